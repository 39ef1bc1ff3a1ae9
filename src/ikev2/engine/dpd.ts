/**
 * Liveness checks (RFC 7296 §2.4, strongSwan's `dpd_delay`): an empty INFORMATIONAL request when
 * nothing was heard from the peer for `dpd_delay`; retransmissions decide that it is gone
 * (`dpd_action`, see keep-up.ts). One timer per IKE SA, re-armed from the last inbound message.
 */
import { ExchangeType } from '../constants.ts';
import { Timer, type IkeSa, type Task } from '../sa/ike-sa.ts';
import { setTimer, type EngineContext } from './context.ts';
import { sendRequest } from './message.ts';
import { queueTask } from './tasks.ts';

export function startDpd(ctx: EngineContext, sa: IkeSa): void {
  const delay = sa.conn?.dpdDelay ?? 0;
  if (delay > 0) setTimer(ctx, sa, Timer.DPD, ctx.sched.now() + delay * 1000);
}

export function dpdCheck(ctx: EngineContext, sa: IkeSa): void {
  const delay = (sa.conn?.dpdDelay ?? 0) * 1000;
  if (delay <= 0 || sa.state !== 'ESTABLISHED') return;
  const idle = ctx.sched.now() - sa.lastInbound;
  if (idle >= delay && !sa.active && !sa.queue.some((t) => t.kind === 'dpd')) queueTask(ctx, sa, { kind: 'dpd' });
  setTimer(ctx, sa, Timer.DPD, Math.max(ctx.sched.now() + 1, sa.lastInbound + delay, ctx.sched.now() + (idle >= delay ? delay : 0)));
}

export function startDpdExchange(ctx: EngineContext, sa: IkeSa, task: Extract<Task, { kind: 'dpd' }>): void {
  sendRequest(ctx, sa, ExchangeType.INFORMATIONAL, [], task);
}
