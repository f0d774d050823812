"""Thin HTTP route handlers: parse the request, call the sessions layer, render."""
