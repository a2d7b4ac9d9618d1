"""An app written with the official inngest SDK (inngest-py 0.5.19) that *our engine runs*:
served by ``inngest.django.serve`` on the test live server, synced into our database, its
runs driven by our workers over real HTTP. (``tests/sdkapp`` is the protocol layer's app,
driven by hand.)"""
