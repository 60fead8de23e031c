// Cluster (admins, only when the server runs on a Ray cluster): the nodes with their camera
// slots, where each camera runs, how often Ray restarted it and rebalancing moved it, each
// node's detector load and batch sizes, the failovers and the moves. Refreshed every 5 s from /api/cluster (`vigil cluster
// status` shows the same). On a single host the server answers {"cluster": null} and the
// navigation has no Cluster entry.

import { api } from './api.js';
import { empty, every, fill, fmtTime, h, header } from './ui.js';

const REFRESH_MS = 5000;

function table(id, heads, rows) {
  return h('div', { class: 'table-wrap' }, h('table', { id },
    h('thead', {}, h('tr', {}, heads.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows)));
}

const num = (text) => h('td', { class: 'num' }, String(text));

function nodeRows(nodes) {
  return nodes.map((n) => h('tr', { dataset: { node: n.name || n.node_id } },
    h('td', {}, n.name || h('span', { class: 'muted' }, 'unnamed')),
    h('td', {}, h('code', { title: n.node_id }, n.node_id.slice(0, 12))),
    h('td', {}, n.alive ? h('span', { class: 'state-ok' }, 'alive') : h('span', { class: 'state-error' }, 'down')),
    num(`${n.camera_slots_used} / ${n.camera_slots_total}`), num(n.cpus), num(n.gpus)));
}

function cameraRows(cameras) {
  return cameras.map((c) => h('tr', { dataset: { camera: c.camera } },
    h('td', {}, c.camera), h('td', {}, c.node || '—'),
    h('td', {}, c.state === 'ALIVE' ? h('span', { class: 'state-ok' }, 'running') : h('span', { class: 'state-error' }, c.state.toLowerCase())),
    num(c.restarts), num(c.moves || 0)));
}

// A node runs one detector per model: the model's file name and input size tell them apart.
function modelOf(d) {
  if (!d.model) return '—';
  return `${d.model.split('/').pop()} ${d.input_size[0]}×${d.input_size[1]}`;
}

function detectorRows(detectors) {
  return detectors.map((d) => h('tr', {},
    h('td', {}, d.node || d.node_id.slice(0, 12)),
    ...(d.error ? [h('td', { colspan: 7, class: 'state-error' }, d.error)]
      : [h('td', {}, modelOf(d)), num(d.images), num(d.batches), num(d.mean_batch.toFixed(2)), num(d.queue), num(d.max_batch), num(d.max_wait_ms)])));
}

export async function render(ctx) {
  document.title = 'Cluster — Vigil';
  const when = h('p', { class: 'muted', id: 'cluster-time' });
  const body = h('div', { id: 'cluster' });
  ctx.root.append(header('Cluster'), when, body);
  const load = async () => {
    const { cluster } = await api('/api/cluster');
    if (!cluster) {
      fill(body, empty('Vigil runs on a single host.', 'The cluster view appears with server.backend: ray.'));
      return;
    }
    // Which server answers: the one supervising the cameras, or an API replica standing by.
    const role = cluster.supervising === true ? ' · this server supervises the cameras'
      : cluster.supervising === false ? ' · this server is an API replica; another supervises the cameras' : '';
    fill(when, `As of ${fmtTime(cluster.gathered_at)}${role}`);
    const failovers = cluster.failovers.length
      ? h('ul', { id: 'cluster-failovers' }, cluster.failovers.map((f) =>
        h('li', {}, `${f.camera}: restarted ${f.restarts}×, ${f.node ? `now on ${f.node}` : 'waiting for a node'}`)))
      : h('p', { class: 'muted', id: 'cluster-failovers' }, 'No failovers.');
    const moved = cluster.rebalanced || [];
    const rebalanced = moved.length
      ? h('ul', { id: 'cluster-rebalanced' }, moved.map((r) =>
        h('li', {}, `${r.camera}: moved ${r.moves}×, ${r.node ? `now on ${r.node}` : 'waiting for a node'}`)))
      : h('p', { class: 'muted', id: 'cluster-rebalanced' }, 'No cameras moved.');
    fill(body,
      h('h2', {}, 'Nodes'), table('cluster-nodes', ['Node', 'Ray node', 'State', 'Camera slots', 'CPUs', 'GPUs'], nodeRows(cluster.nodes)),
      h('h2', {}, 'Cameras'), cluster.cameras.length
        ? table('cluster-cameras', ['Camera', 'Node', 'State', 'Restarts', 'Moves'], cameraRows(cluster.cameras))
        : empty('No camera actors run.'),
      h('h2', {}, 'Detectors'), cluster.detectors.length
        ? table('cluster-detectors', ['Node', 'Model', 'Images', 'Batches', 'Mean batch', 'Queue', 'Max batch', 'Max wait (ms)'], detectorRows(cluster.detectors))
        : empty('No detector actors answer.'),
      h('h2', {}, 'Failovers'), failovers,
      h('h2', {}, 'Rebalanced'), rebalanced);
  };
  await load();
  return every(REFRESH_MS, load);
}
