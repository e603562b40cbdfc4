// archive-builder serve: the edit form. Lists grow and shrink; every change is checked by the
// server (the same rules as `archive-builder validate`) and problems appear beside the field.
(function () {
  "use strict";
  var form = document.getElementById("edit-form");
  if (!form) { return; }
  var state = document.getElementById("check-state");
  var general = document.getElementById("general-problems");
  var timer = null, seq = 0;

  function renumber(list) {
    var rows = list.querySelectorAll(":scope > fieldset.row-item");
    var key = list.getAttribute("data-list");
    var re = new RegExp("^(f-)?" + key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "\\[(\\d+|__i__)\\]");
    rows.forEach(function (row, n) {
      row.querySelector(".no").textContent = n + 1;
      row.querySelectorAll("[name],[id],[for],[data-field]").forEach(function (el) {
        ["name", "id", "for", "data-field"].forEach(function (attr) {
          var v = el.getAttribute(attr);
          if (v && re.test(v)) { el.setAttribute(attr, v.replace(re, function (m, f) { return (f || "") + key + "[" + n + "]"; })); }
        });
      });
    });
    var min = parseInt(list.getAttribute("data-min") || "0", 10);
    rows.forEach(function (row) { row.querySelector(".remove-row").disabled = rows.length <= min; });
  }

  document.querySelectorAll(".rows").forEach(renumber);

  form.addEventListener("click", function (event) {
    var t = event.target;
    if (t.classList.contains("add-row")) {
      var key = t.getAttribute("data-for");
      var list = form.querySelector('.rows[data-list="' + key + '"]');
      var tpl = form.querySelector('template[data-for="' + key + '"]');
      list.appendChild(tpl.content.cloneNode(true));
      renumber(list);
      var added = list.lastElementChild;
      var first = added.querySelector("input:not([type=hidden]),select,textarea");
      if (first) { first.focus(); }
      schedule();
    } else if (t.classList.contains("remove-row")) {
      var row = t.closest("fieldset.row-item");
      var rows = row.parentNode;
      var what = row.querySelector("legend").textContent.trim();
      if (!row.classList.contains("new") && !window.confirm("删除这一项（" + what + "）？保存后才生效。")) { return; }
      row.remove();
      renumber(rows);
      schedule();
    } else if (t.classList.contains("add-pair")) {
      var pair = t.parentNode.querySelector(".pair-row");
      var copy = pair.cloneNode(true);
      copy.querySelectorAll("input").forEach(function (i) { i.value = ""; });
      t.parentNode.insertBefore(copy, t);
      copy.querySelector("input").focus();
    }
  });

  function clear() {
    form.querySelectorAll(".field.has-err,.field.has-warn").forEach(function (f) {
      f.classList.remove("has-err", "has-warn");
      f.querySelector(".msg").textContent = "";
    });
  }

  function place(p) {
    var path = p.path || "";
    while (path) {
      var f = form.querySelector('.field[data-field="' + CSS.escape(path) + '"]');
      if (f) {
        f.classList.add(p.error ? "has-err" : "has-warn");
        var closed = f.closest("details");
        if (closed && p.error) { closed.open = true; }
        var msg = f.querySelector(".msg");
        var line = document.createElement("span");
        line.className = p.error ? "err" : "warn";
        line.textContent = p.message + (p.hint ? "（" + p.hint + "）" : "");
        msg.appendChild(line);
        return true;
      }
      path = path.replace(/(\.[^.\[\]]+|\[\d+\])$/, "");
    }
    return false;
  }

  function show(problems) {
    clear();
    var rest = [];
    problems.forEach(function (p) { if (!place(p)) { rest.push(p); } });
    var ul = general.querySelector("ul");
    ul.textContent = "";
    rest.forEach(function (p) {
      var li = document.createElement("li");
      li.className = p.error ? "err" : "warn";
      var b = document.createElement("b"); b.textContent = p.severity; li.appendChild(b);
      li.appendChild(document.createTextNode((p.field ? "〔" + p.field + "〕" : "") + p.message + (p.hint ? "（提示：" + p.hint + "）" : "")));
      ul.appendChild(li);
    });
    general.hidden = rest.length === 0;
    var errors = problems.filter(function (p) { return p.error; }).length;
    var warns = problems.length - errors;
    state.className = "check-state " + (errors ? "err" : warns ? "warn" : "ok");
    state.textContent = errors ? "有 " + errors + " 处错误，改正后才能保存" : warns ? "可以保存（" + warns + " 条警告）" : "检查通过，可以保存";
  }

  function check() {
    var mine = ++seq;
    state.textContent = "正在检查…"; state.className = "check-state";
    fetch(form.getAttribute("data-check"), { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (mine !== seq) { return; }
        if (data.stale) { state.textContent = "页面已过期，请刷新"; return; }
        show(data.problems);
      })
      .catch(function () { if (mine === seq) { state.textContent = "暂时无法检查（保存时仍会检查）"; } });
  }

  function schedule() { clearTimeout(timer); timer = setTimeout(check, 400); }
  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);

  // Leaving with unsaved changes asks first: the page's own links with the page's words, closing
  // the tab or typing another address with the browser's. "Changed" means the form would send
  // something else than when the page was drawn (a change typed and undone is none); a page
  // drawn again after a refused save holds typed values from the start (data-typed).
  var LEAVE = "离开后未保存的修改将丢失。确定离开本页吗？";
  function values() {
    var parts = [];
    new FormData(form).forEach(function (v, k) { if (k !== "editor" && typeof v === "string") { parts.push(k + "=" + v); } });
    return parts.join("\n");
  }
  var drawn = values(), typed = form.getAttribute("data-typed") === "1", leaving = false;
  function unsaved() { return !leaving && (typed || values() !== drawn); }
  window.addEventListener("beforeunload", function (event) {
    if (unsaved()) { event.preventDefault(); event.returnValue = LEAVE; return LEAVE; }
  });
  document.addEventListener("click", function (event) {
    var a = event.target.closest ? event.target.closest("a[href]") : null;
    if (!a || event.defaultPrevented || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) { return; }
    if (a.target === "_blank" || a.hasAttribute("download") || a.getAttribute("href").charAt(0) === "#") { return; }
    if (!unsaved()) { return; }
    if (window.confirm(LEAVE)) { leaving = true; } else { event.preventDefault(); }
  });

  form.addEventListener("submit", function () {
    leaving = true;
    var b = document.getElementById("save"); b.disabled = true; b.textContent = "正在保存…";
  });
  check();
})();
