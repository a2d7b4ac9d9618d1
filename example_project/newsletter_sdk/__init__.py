"""The seed scenario written with the *official* inngest SDK, as an app that already uses
Inngest would have it, unchanged; this project serves it (``urls.py``) and django-inngest runs
it, over HTTP, after a sync (``manage.py inngest_sync_app http://127.0.0.1:8000/api/inngest``)."""
