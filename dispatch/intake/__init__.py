"""Intake: calls, SMS and classification - contacts as channels report them."""

from dispatch.core.capability import Capability, Deps
from dispatch.intake import calls, sms

INTAKE: Capability[Deps] = Capability(
    "intake",
    handlers={**calls.HANDLERS, **sms.HANDLERS},
    reactors=(sms.reactors,),
)
"""Recording calls and SMS, and the policy that turns an SMS into a case."""
