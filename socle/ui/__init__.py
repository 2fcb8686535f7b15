"""The web interface's kernel: sessions, CSRF, security headers, rendering and the shared pages.

Each service adds its own pages in ``<service>/ui.py`` and templates in ``<service>/templates``; see
``socle.ui.web`` for what a page needs and ``docs/interface.md`` for the conventions.
"""
