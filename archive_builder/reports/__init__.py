"""Village reports made from the same records as the packets.

``stats``: the village's situation at a glance (贫情分析, 三色管理) as tables, written as
.xlsx or PDF; ``notice``: the public notices (公示/公告) with personal data left out.
Both read their wording and rules from the template set (``stats/``, ``notice/``), so a
county changes them without Python.
"""
