"""The simulator's primary beam is the platform's (contimg.beam)."""

from contimg.beam import airy_power
from contimg.instrument import SPEED_OF_LIGHT_M_S as SPEED_OF_LIGHT

__all__ = ["SPEED_OF_LIGHT", "airy_power"]
