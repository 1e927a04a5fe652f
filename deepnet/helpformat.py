"""The help formatter of the ``deepnet`` commands: :class:`common.helpformat.HelpFormatter`."""
from common.helpformat import HelpFormatter

__all__ = ["HelpFormatter"]
