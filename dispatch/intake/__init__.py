"""Intake: calls, SMS, web reports, WeChat pushes, rejected input, classification - what channels report."""

from dispatch.core.capability import Capability, Deps
from dispatch.intake import calls, rejected, sms, web, wechat

INTAKE: Capability[Deps] = Capability(
    "intake",
    handlers={**calls.HANDLERS, **sms.HANDLERS, **web.HANDLERS, **wechat.HANDLERS, **rejected.HANDLERS},
    reactors=(sms.reactors,),
)
"""Recording calls, SMS, web reports, WeChat pushes and rejected input; the policy turning SMS into cases."""
