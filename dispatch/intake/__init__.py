"""Intake: calls, SMS, WeChat pushes, rejected input, classification - contacts as channels report them."""

from dispatch.core.capability import Capability, Deps
from dispatch.intake import calls, rejected, sms, wechat

INTAKE: Capability[Deps] = Capability(
    "intake",
    handlers={**calls.HANDLERS, **sms.HANDLERS, **wechat.HANDLERS, **rejected.HANDLERS},
    reactors=(sms.reactors,),
)
"""Recording calls, SMS, WeChat pushes and rejected input, and the policy that turns an SMS into a case."""
