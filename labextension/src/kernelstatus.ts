/**
 * Keep the kernel indicator on the main shell's state.
 *
 * JupyterLab sets a kernel's status from every iopub `status` message, except those whose parent
 * request type is in the page option `untracked_message_types` (the server's list, which names
 * the debugger's control requests for the same reason: jupyterlab#10701). With ipykernel 7,
 * Lab opens a subshell per comm target the first time a comm of that target opens, and closes it
 * with the last comm: `create_subshell_request` / `delete_subshell_request` on the control
 * channel. ipykernel answers each with `busy` then `idle`, so a widget or comm opened mid-cell
 * (the `%%cost` widget, nbcost's own comm in a "run all") turned the indicator to "Idle" for the
 * rest of the cell. Those control requests say nothing about whether code runs, so they join the
 * untracked list.
 */

/** Subshell control requests (JEP 91), whose busy/idle is not the main shell's. */
export const SUBSHELL_CONTROL_REQUESTS = [
  'create_subshell_request',
  'delete_subshell_request',
  'list_subshell_request'
];

/** `untracked_message_types` (a JSON list, possibly empty or malformed) with `extra` added. */
export function withUntracked(raw: string | undefined, extra: string[]): string {
  let types: unknown;
  try {
    types = JSON.parse(raw || '[]');
  } catch {
    types = [];
  }
  const list = Array.isArray(types) ? types.filter(t => typeof t === 'string') : [];
  for (const type of extra) {
    if (!list.includes(type)) {
      list.push(type);
    }
  }
  return JSON.stringify(list);
}

/** The page config's get/set, as in `@jupyterlab/coreutils`' `PageConfig`. */
export interface IPageOptions {
  getOption(name: string): string;
  setOption(name: string, value: string): string;
}

/** Stop subshell bookkeeping from changing the kernel's displayed busy/idle state. */
export function untrackSubshellControl(page: IPageOptions): void {
  const name = 'untracked_message_types';
  page.setOption(name, withUntracked(page.getOption(name), SUBSHELL_CONTROL_REQUESTS));
}
