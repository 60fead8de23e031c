// Hash routes: #/live, #/live/<camera>, #/events, #/recordings, #/editor/<camera>, #/counts,
// #/audit, #/users, #/tokens, #/login, #/setup. Optional query after "?" (e.g. #/events?camera=door).
// Hash routing keeps the server simple (one index at /) and needs no server-side fallback.

/** The current route: {page, arg, query} from location.hash. */
export function current() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, search = ''] = hash.split('?');
  const [page = '', ...rest] = path.split('/').filter(Boolean);
  return {
    page,
    arg: rest.length ? decodeURIComponent(rest.join('/')) : null,
    query: Object.fromEntries(new URLSearchParams(search)),
  };
}

/** The hash for a page, its argument and query. */
export function href(page, arg = null, query = null) {
  let out = `#/${page}`;
  if (arg !== null && arg !== undefined) out += `/${encodeURIComponent(arg)}`;
  const search = new URLSearchParams(
    Object.entries(query || {}).filter(([, v]) => v !== null && v !== undefined && v !== ''),
  ).toString();
  return search ? `${out}?${search}` : out;
}

/** Go to a page (adds a history entry; the hashchange listener renders it). */
export function go(page, arg = null, query = null) {
  const target = href(page, arg, query);
  if (location.hash === target) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = target;
}

/** Replace the query of the current page without a new history entry or a re-render. */
export function setQuery(query) {
  const { page, arg } = current();
  history.replaceState(null, '', href(page, arg, query));
}

/** Call `fn(route)` now and on every hash change. */
export function start(fn) {
  window.addEventListener('hashchange', () => fn(current()));
  fn(current());
}
