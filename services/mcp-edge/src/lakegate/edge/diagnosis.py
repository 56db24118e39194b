"""Next steps for a source whose check failed (or passed with a warning), read from the check's error.

PostgreSQL and the network fail in a handful of recognisable ways; each gets the concrete fix a
data engineer would try first. Anything unrecognised gets the general checklist.
"""

from __future__ import annotations

import re

_CHECKLIST = (
    "Check that the server is running and reachable from where lakegate runs (host, port, firewalls).",
    "Check the database name and user name for typos.",
    "If the password changed, register the source again with connect_postgres.",
)

#: (pattern in the error message, the steps it calls for), first match wins.
_KNOWN: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (
        re.compile(r"password|authentication failed", re.IGNORECASE),
        (
            "The server refused the stored password: ask the database owner for the current one, then register "
            "the source again with connect_postgres.",
            "If the password is right, check that pg_hba.conf allows this user to log in with a password "
            "(scram-sha-256 or md5) from lakegate's address.",
        ),
    ),
    (
        re.compile(r"pg_hba", re.IGNORECASE),
        (
            "The server has no pg_hba.conf entry for lakegate's address, user and database: add one (e.g. "
            "`host <database> <user> <lakegate address>/32 scram-sha-256`) and reload PostgreSQL.",
        ),
    ),
    (
        re.compile(r"database .* does not exist", re.IGNORECASE),
        ("The database name is wrong: list the databases with `\\l` in psql, then register the source again.",),
    ),
    (
        re.compile(r"role .* does not exist|user .* does not exist", re.IGNORECASE),
        ("The user does not exist on that server: create it (read-only grants are enough) or fix the name.",),
    ),
    (
        re.compile(r"host name|resolve|getaddrinfo|name or service not known|nodename", re.IGNORECASE),
        (
            "The host name does not resolve: check its spelling, or use the server's IP address; a name that "
            "works on your laptop may not resolve where lakegate runs.",
        ),
    ),
    (
        re.compile(r"refused|timed? ?out|timeout|unreachable|no route", re.IGNORECASE),
        (
            "lakegate could not reach the server: check that PostgreSQL runs and listens on that address and "
            "port (`listen_addresses`, `port` in postgresql.conf) and that no firewall or security group blocks it.",
            "If the server is in a private network, run lakegate where it can reach it.",
        ),
    ),
    (
        re.compile(r"ssl|certificate", re.IGNORECASE),
        ("The server's SSL settings refused the connection: check whether it requires SSL and its certificate.",),
    ),
    (
        re.compile(r"permission denied|must be|privilege", re.IGNORECASE),
        (
            "The user lacks rights: `GRANT CONNECT ON DATABASE <db> TO <user>; GRANT USAGE ON SCHEMA <schema> TO "
            "<user>; GRANT SELECT ON ALL TABLES IN SCHEMA <schema> TO <user>;`",
        ),
    ),
)


def next_steps(error_code: str | None, error: str | None, read_only: bool | None) -> list[str]:
    """What to do about a check's outcome, first things first."""
    if error is None:
        if read_only is False:
            return [
                "The source works, but its user can write: lakegate only reads, so a user with read-only grants "
                "limits what a leaked password can do. Register one with connect_postgres."
            ]
        return ["The source works: list_source_tables shows what you can sync."]
    if error_code == "not_found":
        return ["lakegate has no source with that id for you: list_sources shows your sources and their ids."]
    if error_code == "unavailable" and "service" in error:
        return ["A lakegate service is not running: start the stack (`make up`), then check again.", *_CHECKLIST]
    for pattern, steps in _KNOWN:
        if pattern.search(error):
            return list(steps)
    return list(_CHECKLIST)
