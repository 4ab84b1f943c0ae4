"""Reports: calls, cases, satisfaction, units and agents by day, week or month, from the log."""

from dispatch.core.capability import Capability
from dispatch.reports import monthly, read_model

REPORTS: Capability[monthly.ReportsDeps] = Capability(
    "reports",
    projections=(read_model.projections,),
    workers=(monthly.workers,),
)
"""The reports' projection (rebuilt by `intake rebuild reports`) and the monthly file's timer."""
