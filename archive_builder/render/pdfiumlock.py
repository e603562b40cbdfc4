"""One lock for every use of pdfium in this process.

pdfium is not thread-safe: pypdfium2 asks that no two threads call into it at the same time,
and a crash, not an exception, is what happens otherwise. The build renders in worker
processes, but the web app runs comparisons, page images, single packets (evidence pages
rasterised) and Word copies (evidence pages as pictures) on the threads of one server process.
Each use holds ``PDFIUM`` from opening a document to closing it. It is re-entrant, so a
comparison holding two documents, or a caller that already holds it, does not deadlock.
"""

from __future__ import annotations

import threading

PDFIUM = threading.RLock()
