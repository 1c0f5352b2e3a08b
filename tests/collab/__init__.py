"""Collaboration tests: clone, push, pull and status against real Git servers."""
