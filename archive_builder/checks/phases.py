"""The phase of each procedure step: identification (识别), exit (退出) or monitoring (监测).

Records keep one list of steps for all three; the audit's publicity rule (how many days a
公示 must last) and the notices (which households a 公示 lists) both need to know which
phase a step belongs to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from ..records.models import Household, ProcedureStep


@dataclass(frozen=True)
class PhasedStep:
    """A procedure step with the phase it belongs to and what the phase decides."""

    step: ProcedureStep
    phase: str  # 识别 | 退出 | 监测
    matter: str  # 纳入 / 退出 / 纳入监测 / 风险消除


_ELIMINATION = re.compile(r"风险.*消除|消除.*风险")
MONITOR_LEAD_DAYS = 180


def phased_steps(record: Household) -> list[PhasedStep]:
    """Return the record's procedure steps in date order, each with its phase.

    Records keep one list of steps for identification, exit and monitoring; the phase is
    read from the steps themselves: 预退出/退出确认 start the exit, 风险识别 or an application
    close to the monitoring's start date (``monitor.identified_on``) starts monitoring, a step
    about eliminating the risk (风险消除, or a result saying so) starts the risk's elimination.
    """
    monitor = record.monitor
    monitor_start = monitor.identified_on.first_day() if monitor and monitor.identified_on else None
    steps = sorted((s for s in record.procedure if s.date is not None), key=lambda s: s.date)  # type: ignore[arg-type,return-value]
    phase, matter = "识别", "识别纳入"
    out = []
    for step in steps:
        assert step.date is not None
        result = step.result or ""
        if step.kind == "申请":
            if monitor is not None and (monitor_start is None
                                        or step.date >= monitor_start - timedelta(days=MONITOR_LEAD_DAYS)):
                phase, matter = "监测", "纳入监测"
            else:
                phase, matter = "识别", "识别纳入"
        elif step.kind in ("预退出", "退出确认"):
            phase, matter = "退出", "脱贫退出"
        elif step.kind == "风险识别":
            phase, matter = "监测", "纳入监测"
        elif step.kind == "风险消除" or (monitor is not None and _ELIMINATION.search(result)):
            phase, matter = "监测", "风险消除"
        out.append(PhasedStep(step, phase, matter))
    return out
