"""The one error type the CLI turns into a one-line message (no traceback) and exit status 2."""


class UserError(Exception):
    """Bad input from the user: unknown name, malformed string, missing or corrupt file.

    The message must be one line that says what is wrong and how to fix it.
    """
