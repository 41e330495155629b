// Cluster: the nodes of this node's cluster and their status (GET
// /v5/ase/cluster, every 5 s), or a sentence saying this node is not in
// cluster mode (404 no_cluster_mode).
'use strict';
(() => {
  const { el, call, APIError, register, main } = window.ASE;

  function clusterPage() {
    let alive = true;
    let timer = 0;
    const body = el('div', { id: 'cluster' }, el('p', { class: 'muted' }, 'Loading…'));
    main.replaceChildren(el('h1', {}, 'Cluster'), body);
    async function load() {
      try {
        const c = await call('GET', '/v5/ase/cluster');
        if (!alive) return;
        render(c);
      } catch (e) {
        if (!alive) return;
        if (e instanceof APIError && e.status === 404 && e.data && e.data.status === 'no_cluster_mode') {
          body.replaceChildren(el('section', { class: 'card' },
            el('p', { id: 'cluster-none' }, 'This node is not in cluster mode: it keeps its state to itself (in its data_dir) and shares it with no other node.'),
            el('p', { class: 'muted' }, 'Nodes form a cluster with enable_cluster=true, cluster_id and etcd_endpoints in their configuration; they then share one state through etcd.')));
          return; // standalone until restarted: nothing to refresh
        }
        body.replaceChildren(el('p', { class: 'error', id: 'cluster-error' }, 'Could not read the cluster: ' + e.message));
      }
      if (alive) timer = setTimeout(load, 5000);
    }
    function render(c) {
      const nodes = (c.node || []).slice().sort((a, b) => (a.host + ':' + a.port).localeCompare(b.host + ':' + b.port, 'en', { numeric: true }));
      const active = nodes.filter((n) => n.status === 'active').length;
      const here = (n) => String(n.port) === location.port && (n.host === location.hostname || location.hostname === 'localhost');
      body.replaceChildren(
        el('section', { class: 'card figures' },
          el('div', { class: 'figure' }, el('b', { id: 'cluster-id' }, c.cluster_id), 'cluster ID'),
          el('div', { class: 'figure ' + (active === nodes.length ? 'allow' : 'block') }, el('b', { id: 'cluster-active' }, active + ' of ' + (c.node_count ?? nodes.length)), 'nodes active')),
        el('section', { class: 'card' }, el('h2', {}, 'Nodes'),
          el('div', { class: 'table-wrap' }, el('table', { id: 'node-list' },
            el('thead', {}, el('tr', {}, el('th', {}, 'Management address'), el('th', {}, 'Status'), el('th', {}, 'Node ID'))),
            el('tbody', {}, nodes.map((n) => el('tr', { 'data-uuid': n.uuid, 'data-status': n.status },
              el('td', {}, n.host + ':' + n.port, here(n) ? el('span', { class: 'muted' }, ' (this console)') : null),
              el('td', {}, el('span', { class: 'badge ' + (n.status === 'active' ? 'up' : 'down') }, n.status)),
              el('td', {}, el('code', {}, n.uuid))))))),
          el('p', { class: 'muted' }, 'A node is active while it renews its lease in etcd; one stopped, killed or cut off from etcd shows inactive (at once when stopped cleanly, otherwise within cluster_node_ttl). Refreshed every 5 seconds.')));
    }
    load();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }

  register('cluster', 'Cluster', 90, clusterPage);
})();
