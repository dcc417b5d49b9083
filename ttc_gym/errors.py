"""The base of ttc-gym's own errors: every error the package raises on purpose with a one-line
message for the user (a bad config, a damaged file, a busy output folder, a factory that built no
agent, lost workers) is a `TTCGymError`, so that a front end (the command line) catches one type and
prints the message, while programming errors keep their tracebacks. Each subclass also derives from
the built-in type it always was (ValueError, TypeError, OSError, RuntimeError), so that existing
`except ValueError:` code keeps working."""

from __future__ import annotations


class TTCGymError(Exception):
    """An error whose message says what was expected and what came: shown to the user as is."""
