/**
 * The comm link to one notebook's kernel: receives nbcost's messages, reattaches after a reload.
 */

import { ISessionContext } from '@jupyterlab/apputils';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';

import { COMM_TARGET, NbcostMessage, parseMessage, PROTOCOL_VERSION } from './protocol';

/**
 * Called with each message; `own` is true when this browser client sent the execute request the
 * message belongs to (so only that client writes cell metadata under real-time collaboration).
 */
/** What this front end understands, told to the kernel in its hello. */
const FRONTEND_CAPABILITIES = ['tick', 'final', 'session'];

export type MessageHandler = (message: NbcostMessage, own: boolean) => void;

export class KernelLink implements IDisposable {
  constructor(
    private readonly _sessionContext: ISessionContext,
    private readonly _onMessage: MessageHandler,
    private readonly _onKernelLost: () => void
  ) {
    _sessionContext.kernelChanged.connect(this._onKernelChanged, this);
    _sessionContext.statusChanged.connect(this._onStatusChanged, this);
    void _sessionContext.ready.then(() => this._attach(_sessionContext.session?.kernel ?? null));
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._detach();
    this._sessionContext.kernelChanged.disconnect(this._onKernelChanged, this);
    this._sessionContext.statusChanged.disconnect(this._onStatusChanged, this);
  }

  private _onKernelChanged(
    _: ISessionContext,
    change: { newValue: Kernel.IKernelConnection | null }
  ): void {
    this._onKernelLost();
    this._attach(change.newValue);
  }

  private _onStatusChanged(_: ISessionContext, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
      this._onKernelLost();
    }
    // After a restart the kernel holds no nbcost comm until `%load_ext nbcost` runs again; that
    // opens a fresh comm to the target registered below, so nothing else is needed here.
  }

  private _attach(kernel: Kernel.IKernelConnection | null): void {
    if (this._isDisposed || !kernel || kernel === this._kernel) {
      return;
    }
    this._detach();
    this._kernel = kernel;
    kernel.registerCommTarget(COMM_TARGET, this._onCommOpen);
    void this._reattach(kernel);
  }

  private _detach(): void {
    if (this._kernel && !this._kernel.isDisposed) {
      this._kernel.removeCommTarget(COMM_TARGET, this._onCommOpen);
    }
    this._kernel = null;
  }

  /**
   * After a page reload the kernel still sends on comms this page never saw (and they are
   * dropped). If the kernel has nbcost comms, open one from this side and ask for the state.
   */
  private async _reattach(kernel: Kernel.IKernelConnection): Promise<void> {
    try {
      const reply = await kernel.requestCommInfo({ target_name: COMM_TARGET });
      const comms = reply.content.status === 'ok' ? reply.content.comms : {};
      const known = Object.keys(comms).some(id => kernel.hasComm(id));
      if (kernel !== this._kernel || Object.keys(comms).length === 0 || known) {
        return;
      }
      const comm = kernel.createComm(COMM_TARGET);
      this._listen(comm, kernel);
      await comm.open({
        type: 'reattach',
        v: PROTOCOL_VERSION,
        capabilities: FRONTEND_CAPABILITIES
      }).done;
    } catch (error) {
      console.warn('nbcost: could not reattach to the kernel', error);
    }
  }

  private _onCommOpen = (comm: Kernel.IComm, msg: KernelMessage.ICommOpenMsg): void => {
    const kernel = this._kernel;
    if (!kernel) {
      return;
    }
    this._listen(comm, kernel);
    this._deliver(msg.content.data, msg.parent_header, kernel);
    // Answer the kernel's hello: only a front end that answers gets ticks.
    try {
      comm.send({ type: 'hello', v: PROTOCOL_VERSION, capabilities: FRONTEND_CAPABILITIES });
    } catch (error) {
      console.warn('nbcost: could not answer the kernel', error);
    }
  };

  private _listen(comm: Kernel.IComm, kernel: Kernel.IKernelConnection): void {
    comm.onMsg = (msg: KernelMessage.ICommMsgMsg) => {
      this._deliver(msg.content.data, msg.parent_header, kernel);
    };
  }

  private _deliver(
    data: unknown,
    parent: KernelMessage.IHeader | Record<string, never> | undefined,
    kernel: Kernel.IKernelConnection
  ): void {
    if (this._isDisposed || kernel !== this._kernel) {
      return;
    }
    const message = parseMessage(data);
    if (!message) {
      return;
    }
    const session = parent && 'session' in parent ? parent.session : undefined;
    this._onMessage(message, session === kernel.clientId);
  }

  private _kernel: Kernel.IKernelConnection | null = null;
  private _isDisposed = false;
}
