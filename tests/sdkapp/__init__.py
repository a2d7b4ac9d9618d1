"""An app written with the *official* inngest SDK (inngest-py), as a user of django-inngest's
SDK protocol would write it. Not an installed Django app and not autodiscovered: tests build
its client against a capture server and mount ``inngest.django.serve`` on a throwaway URLconf,
so the project's own function registry never sees these functions."""
