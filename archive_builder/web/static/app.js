// archive-builder serve: the few live parts (build progress, busy buttons). No framework.
(function () {
  "use strict";
  document.querySelectorAll("form[data-busy]").forEach(function (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("button[type=submit]");
      if (button) { button.disabled = true; button.textContent = form.getAttribute("data-busy"); }
    });
  });

  document.querySelectorAll(".file input[type=file]").forEach(function (input) {
    input.addEventListener("change", function () {
      var shown = input.parentNode.querySelector(".file-name");
      if (shown) { shown.textContent = input.files.length ? input.files[0].name : "未选择文件"; }
    });
  });

  var panel = document.getElementById("build");
  if (!panel) { return; }
  var box = document.getElementById("progress");
  var stage = document.getElementById("stage");
  var fill = document.getElementById("fill");
  var result = document.getElementById("result");
  var form = panel.querySelector("form");
  var button = form.querySelector("button");
  var timer = null;

  function show(s) {
    if (!(s.running || s.finished || s.other)) { return false; }
    box.hidden = false;
    if (s.other) {
      stage.textContent = "另一个生成任务（例如命令行中的 archive-builder build）正在使用输出目录，请等待它结束。";
      fill.style.width = "100%"; fill.className = "fill";
      button.disabled = true;
      return true;
    }
    var part = s.total ? "：" + s.done + " / " + s.total + " " + s.label : "";
    stage.textContent = (s.running ? "正在生成 · " : "") + s.stage + part;
    var pct = s.running ? (s.total ? Math.round(100 * Math.min(s.done, s.total) / s.total) : 5) : 100;
    fill.style.width = pct + "%";
    fill.className = s.running ? "fill" : "fill done";
    button.disabled = !!s.running;
    if (!s.running && s.finished) {
      stage.textContent = (s.error ? "生成未完成" : "生成完成") + (s.started ? "（" + s.started + " 开始的生成）" : "");
      if (s.error) {
        result.className = "result err";
        result.textContent = s.error.kind + "：" + s.error.message + (s.error.hint ? "（提示：" + s.error.hint + "）" : "");
      } else {
        result.className = "result ok";
        result.textContent = s.summary + (s.failed.length ? "；未生成：" + s.failed.join("；") : "");
        if (s.warnings && s.warnings.length) {
          var details = document.createElement("details");
          details.className = "build-warnings";
          var summary = document.createElement("summary");
          summary.textContent = "查看 " + (s.warnings.length + (s.more_warnings || 0)) + " 条警告";
          details.appendChild(summary);
          var list = document.createElement("ul");
          s.warnings.forEach(function (w) {
            var li = document.createElement("li"); li.textContent = w; list.appendChild(li);
          });
          if (s.more_warnings) {
            var more = document.createElement("li");
            more.textContent = "……另有 " + s.more_warnings + " 条未列出";
            list.appendChild(more);
          }
          details.appendChild(list);
          result.appendChild(details);
        }
      }
    } else { result.textContent = ""; }
    return !!s.running;
  }

  function poll() {
    fetch("/build/status", { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        var again = show(s);
        if (again) { timer = setTimeout(poll, 500); }
        else if (!s.running && s.finished && box.dataset.started === "1") {
          box.dataset.started = "0";
          setTimeout(function () { window.location.reload(); }, 1500);
        }
      })
      .catch(function () { timer = setTimeout(poll, 2000); });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    box.hidden = false; stage.textContent = "正在启动生成…"; result.textContent = ""; fill.style.width = "2%";
    fetch("/build", { method: "POST", body: new FormData(form), credentials: "same-origin",
                      headers: { "X-Requested-With": "fetch" } })
      .then(function (r) {
        if (!r.ok) { return r.text().then(function (t) {
          var doc = new DOMParser().parseFromString(t, "text/html");
          var m = doc.querySelector(".message");
          throw new Error(m ? m.textContent : "无法开始生成");
        }); }
        box.dataset.started = "1";
        poll();
      })
      .catch(function (e) { stage.textContent = e.message; button.disabled = false; });
  });
  poll();
})();
