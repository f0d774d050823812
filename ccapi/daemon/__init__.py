"""The daemon side: what runs the gateway on a user's machine, around the server (``ccapi.app``), not in it.

- ``cli``: the ``cc-api`` command (``python -m ccapi``); parses arguments, renders with ``console``;
- ``launcher``: start, stop and status of the background gateway, shared by the CLI and the menu app;
- ``process``: pid liveness and identity, so a stale pid file is never trusted;
- ``handover``: ``cc-api run`` re-executes itself with its secrets in a pipe, out of ``/proc/<pid>/environ``;
- ``envfile``: ``$CC_API_HOME/cc-api.env``, read by every command and written by ``service``;
- ``logfile``: reading the gateway's log (last lines, follow across rotation);
- ``service``: ``install-service`` / ``uninstall-service`` from the templates in ``service/``;
- ``menu``: ``cc-api-menu``, the macOS menu bar app (rumps) over ``launcher``.

The server imports nothing from here. What both sides use stays below: ``ccapi.paths`` (the config reads it),
``ccapi.privacy`` (the sessions layer reads the state paths), ``ccapi.childproc`` (the engine's child launcher, run
by its path) and ``ccapi.observability.logs`` (the gateway's own log lines).
"""
