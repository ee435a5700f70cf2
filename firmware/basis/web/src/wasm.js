// Loads the wasm module (basis-core and basis-e2ee compiled by packaging/web/build-wasm) once,
// and hands out its exports as `basis`.

import init, * as wasm from '../pkg/basis_web.js';

/** The module's exports, usable after [`loadWasm`] resolved. */
export const basis = wasm;

let loading = null;

/** Instantiates the module from the file the node serves beside the page. */
export function loadWasm() {
  if (!loading) {
    loading = init({ module_or_path: new URL('basis_web_bg.wasm', document.baseURI) });
  }
  return loading;
}
