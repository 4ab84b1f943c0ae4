// The organisation as this token sees it (GET /api/v1/org): the caller's node, the names of
// the nodes (a case's owner is shown by name), where a case may be dispatched down to and
// whether there is a level above to report up to.
import { api } from './api.js';

export const ORG = { node: null, up: null, down: [], names: new Map() };

/** Load the tree once (an older server without the endpoint leaves it empty). */
export async function loadOrg() {
  try {
    const body = await api('/api/v1/org');
    ORG.node = body.node;
    ORG.up = body.up_to;
    ORG.down = body.down_to || [];
    ORG.names = new Map([...(body.nodes || []), ...(body.up_to ? [body.up_to] : [])].map((n) => [n.id, n.name]));
  } catch { /* no organisation: no owner names, no moves */ }
  return ORG;
}

/** The name of a node (its id when it is not known here). */
export function ownerName(id) {
  return id ? ORG.names.get(id) || id : null;
}
