"""Joins the console's cancel details and links (0003_console2, which follows 0002 as the lead
asked) with the main line (0003 flow control, 0004 SDK apps). Flow control and 0003_console2
both widen ``cancel_source`` and ``Cancellation.source`` to 16 characters with the same
choices, so their order does not matter."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("django_inngest", "0003_console2_cancel_details_and_links"),
        ("django_inngest", "0004_sdk_apps"),
    ]

    operations = []
