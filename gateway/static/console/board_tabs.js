// The board's tabs by role: which cases each shows, and a unit's own cases first.
//   unit:        All (its own first; only its own pinned) · Mine (assigned to it) · Overdue
//   dispatcher:  All · Unassigned (open, no one holds it) · Overdue
//   agent:       All · Mine (waiting for its call-back) · Unassigned · Overdue
//   auditor:     All · Overdue
const CLOSED = new Set(['completed', 'called_back', 'archived', 'closed']);

export const TABS = {
  unit: ['all', 'mine', 'overdue'],
  dispatcher: ['all', 'unassigned', 'overdue'],
  admin: ['all', 'unassigned', 'overdue'],
  agent: ['all', 'mine', 'unassigned', 'overdue'],
  auditor: ['all', 'overdue'],
};

/** The tabs a role sees, the first one open at start. */
export function tabsFor(role) { return TABS[role] || ['all']; }

/** Open and past its deadline. */
export function overdue(item, now = Date.now()) {
  return Boolean(item.deadline) && !CLOSED.has(item.status) && new Date(item.deadline).getTime() < now;
}

/** Whether `item` belongs in `tab` for the signed-in `me` ({role, subject}). */
export function inTab(tab, item, me) {
  if (tab === 'overdue') return overdue(item);
  if (tab === 'unassigned') return !item.assigned_to && !CLOSED.has(item.status);
  if (tab === 'mine') {
    if (me.role === 'agent') return item.status === 'completed' && !item.callback_outcome;
    return item.assigned_to === me.subject;
  }
  return true;
}

/** Whether an urgent case is pinned for `me`: a unit pins only its own (the rest is others' work). */
export function pinsFor(item, me) {
  return me.role !== 'unit' || item.assigned_to === me.subject;
}

/** A comparator putting the cases assigned to a unit first (others keep `then`'s order). */
export function ownFirst(me, then) {
  if (me.role !== 'unit') return then;
  const own = (item) => (item.assigned_to === me.subject ? 0 : 1);
  return (a, b) => own(a) - own(b) || then(a, b);
}
