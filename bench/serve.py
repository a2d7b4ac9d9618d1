"""Django's own threaded development server (what ``runserver --noreload`` runs), with Nagle off.

``runserver`` never sets ``TCP_NODELAY``. Its handler writes the response headers and body in
separate ``send()`` calls, so on a keep-alive connection the body waits for the client's delayed
ACK: every request takes ~40 ms whatever the application does. Production servers (gunicorn,
uWSGI, waitress) set ``TCP_NODELAY``; this does the same and is otherwise ``runserver``.

    python bench/serve.py PORT   (with DJANGO_SETTINGS_MODULE set)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import django

    django.setup()
    from django.core.servers.basehttp import WSGIRequestHandler, get_internal_wsgi_application, run

    WSGIRequestHandler.disable_nagle_algorithm = True
    run("127.0.0.1", int(sys.argv[1]), get_internal_wsgi_application(), threading=True)


if __name__ == "__main__":
    main()
