"""``archive-builder serve``: the program in a browser (see ``app.create_app``)."""
