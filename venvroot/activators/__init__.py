"""Activate scripts, one small class per shell next to its template."""

from __future__ import annotations

from .base import ActivationContext, Activator
from .bash import BashActivator
from .cshell import CShellActivator
from .fish import FishActivator
from .nushell import NushellActivator
from .xonsh import XonshActivator

ACTIVATORS: dict[str, type[Activator]] = {
    cls.name: cls for cls in (BashActivator, FishActivator, CShellActivator, XonshActivator, NushellActivator)
}

__all__ = ["ACTIVATORS", "ActivationContext", "Activator"]
