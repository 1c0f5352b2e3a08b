"""Tests of modelbox.objects (a package, so that tests/ is on sys.path for s3server)."""
