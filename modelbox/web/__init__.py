"""The registry in a browser: ``modelbox ui`` and ``modelbox site build OUT`` (docs/web.md).

* :mod:`~modelbox.web.html`   the one escaping helper and the element builder;
* :mod:`~modelbox.web.pages`  the page model: one function per page, data -> dict (the
  page's ``.json`` twin), read from the repository through the existing read paths;
* :mod:`~modelbox.web.render` dict -> HTML, server-side; :mod:`~modelbox.web.charts` SVG;
* :mod:`~modelbox.web.site`   the static build, incremental; :mod:`~modelbox.web.server`
  the loopback server.
"""
