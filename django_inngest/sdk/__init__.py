"""The Inngest SDK wire protocol, seen from the server: what lets django-inngest run functions
written with the official ``inngest`` SDK (``inngest.django.serve``) unchanged.

Small pure modules, with no engine or model imports, tested against inngest-py itself
(``tests/test_sdk_*.py``):

- ``signing``: JCS canonicalisation, request signatures, response verification, Bearer hashes;
- ``wire``: the call request we POST, memo encoding, step-ID hashes;
- ``responses``: what the SDK answers, as typed outcomes and ops;
- ``registration``: parsing and validating a ``POST /fn/register`` body;
- ``sync``: the sync PUT we send, how to read its answer, our replies to ``/fn/register``;
- ``url_guard``: which serve URLs our workers may POST to (SSRF);
- ``transport``: signed POSTs and the sync PUT over keep-alive ``http.client`` connections.
"""
