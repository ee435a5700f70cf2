// The node page: whether this board is linked with the others, for a field team checking
// their setup: the node's name and id, its peers and their state, and the WAN bridge.

import { useEffect, useState } from 'preact/hooks';
import { Notice, html } from '../ui.js';

export function NodePage({ client }) {
  const [status, setStatus] = useState(null);
  const [peers, setPeers] = useState([]);
  const [error, setError] = useState('');
  const load = async () => {
    try {
      setStatus(await client.node.status());
      setPeers((await client.node.peers()).peers);
      setError('');
    } catch (err) {
      setError(err.message || String(err));
    }
  };
  useEffect(() => {
    load();
    const t = setInterval(load, 5000);
    return () => clearInterval(t);
  }, []);
  const linked = peers.filter((p) => p.state === 'connected');
  return html`
    <section class="form-page" aria-label="This node">
      <div class="bar"><h2>Node</h2></div>
      <${Notice} kind="error">${error}<//>
      ${status
        ? html`<dl class="facts">
            <dt>Name</dt><dd>${status.name}</dd>
            <dt>Node id</dt><dd><code>${status.node_id.slice(0, 8)}</code></dd>
            <dt>Connection</dt><dd>${client.online ? 'connected' : 'offline, retrying'}</dd>
            <dt>Linked nodes</dt><dd>${linked.length} of ${peers.length} known</dd>
            <dt>Events held</dt><dd>${status.events}</dd>
            <dt>Software</dt><dd>${status.version}</dd>
            ${status.wan ? html`<dt>WAN</dt><dd>${status.wan}</dd>` : ''}
            ${(status.upstreams || []).map((u) => html`<dt>Upstream ${u.node_id.slice(0, 8)}</dt><dd>${u.state}</dd>`)}
          </dl>`
        : html`<p>Loading…</p>`}
      <h3>Other nodes</h3>
      ${peers.length === 0
        ? html`<p class="empty">No other node known yet. Nodes on this network with the same federation secret link by themselves.</p>`
        : html`<ul class="peers">
            ${peers.map((p) => html`<li key=${p.node_id}>
              <span class=${'dot ' + p.state} aria-hidden="true"></span>
              <span>${p.name || p.node_id.slice(0, 8)}</span> <small>${p.state}${p.rtt_ms !== undefined ? `, ${Math.round(p.rtt_ms)} ms` : ''}</small>
            </li>`)}
          </ul>`}
    </section>`;
}
