"""One exception type for every user-facing failure: the CLI prints its message on one line."""


class StqError(Exception):
    """A problem with the user's input or environment, described in one clear sentence.

    The message names what is wrong (layer, file, field) and what would be right.
    """
