"""Build a village archive: plan by content hash, render packets in worker processes, collate
boxes, write the manifest (build.py is the pipeline)."""
