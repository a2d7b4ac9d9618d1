"""Apps written with the official inngest SDK whose functions this server runs over HTTP: their
functions as the registry sees them (``function``, ``catalog``), syncing them (``sync``), the
protocol wired to settings (``http``) and their system checks (``checks``). The wire protocol
itself is ``django_inngest.sdk``, pure."""
