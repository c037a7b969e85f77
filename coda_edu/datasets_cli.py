"""(filled in by a later step)"""


def add_cli(sub) -> None:
    return None
