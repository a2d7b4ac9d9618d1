"""Joins the two branches that both followed 0002: the console's cancel details and links, and
flow control. Both widen ``cancel_source`` and ``Cancellation.source`` to 16 characters with the
same choices, so their order does not matter."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("django_inngest", "0003_console2_cancel_details_and_links"),
        ("django_inngest", "0003_flow_control"),
    ]

    operations = []
