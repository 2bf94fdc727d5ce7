import { describe, expect, it } from 'vitest';
import { observeMachine, SCRAPE_READ_TIMEOUT_MS } from '../../src/observability/engine-metrics.ts';
import { createMetrics, MAX_LABEL_VALUES } from '../../src/observability/metrics.ts';

/** The value of a series with exactly these labels, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('the Metrics interface the engine reports to', () => {
  it('records every series it offers, as Prometheus text', async () => {
    const metrics = createMetrics();
    metrics.transition('payment', 'pending', 'charging', 'PAY');
    metrics.transition('payment', 'pending', 'charging', 'PAY');
    metrics.effect('charge', 'applied', 0.004);
    metrics.effect('charge', 'declined', 0.002);
    metrics.lockWait(0.03);
    metrics.tokenBusy();
    metrics.staleWrite();
    metrics.timerLateness(2);
    metrics.redisError('full');
    metrics.observeOutbox('payment', () => ({ depth: 3, oldestAgeSeconds: 12.5 }));
    metrics.observeQueue('expiry', () => Promise.resolve({ delayed: 7, active: 1, failed: 0 }));

    const { text, contentType } = await metrics.scrape();

    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(
      sample(
        text,
        'paystate_transitions_total{machine="payment",from="pending",to="charging",event="PAY"}',
      ),
    ).toBe(2);
    expect(
      sample(text, 'paystate_effect_duration_seconds_count{effect="charge",outcome="applied"}'),
    ).toBe(1);
    expect(
      sample(text, 'paystate_effect_duration_seconds_count{effect="charge",outcome="declined"}'),
    ).toBe(1);
    expect(sample(text, 'paystate_lock_wait_seconds_count')).toBe(1);
    expect(sample(text, 'paystate_token_busy_total')).toBe(1);
    expect(sample(text, 'paystate_stale_write_retries_total')).toBe(1);
    expect(sample(text, 'paystate_timer_lateness_seconds_bucket{le="5"}')).toBe(1);
    expect(sample(text, 'paystate_timer_lateness_seconds_bucket{le="1"}')).toBe(0);
    expect(sample(text, 'paystate_redis_errors_total{kind="full"}')).toBe(1);
    expect(sample(text, 'paystate_outbox_depth{machine="payment"}')).toBe(3);
    expect(sample(text, 'paystate_outbox_oldest_age_seconds{machine="payment"}')).toBe(12.5);
    expect(sample(text, 'paystate_queue_jobs{queue="expiry",state="delayed"}')).toBe(7);
    expect(sample(text, 'paystate_queue_jobs{queue="expiry",state="active"}')).toBe(1);
    expect(text).toContain('process_resident_memory_bytes');
  });

  it('leaves out a source it cannot read rather than report a stale value', async () => {
    const metrics = createMetrics();
    let up = true;
    metrics.observeQueue('expiry', () =>
      up ? { delayed: 2 } : Promise.reject(new Error('Connection is closed.')),
    );
    expect(
      sample((await metrics.scrape()).text, 'paystate_queue_jobs{queue="expiry",state="delayed"}'),
    ).toBe(2);
    up = false;
    expect(
      sample((await metrics.scrape()).text, 'paystate_queue_jobs{queue="expiry",state="delayed"}'),
    ).toBeUndefined();
  });

  it("answers a scrape within its time limit when a machine's reads hang (a Redis that never answers)", async () => {
    const metrics = createMetrics();
    const never = new Promise<never>(() => undefined);
    observeMachine(
      metrics,
      { name: 'payment', outboxState: () => never, timerJobCounts: () => never },
      { queue: 'payment-timers', now: () => 0 },
    );
    metrics.tokenBusy();
    const started = Date.now();
    const { text } = await metrics.scrape();

    expect(Date.now() - started).toBeLessThan(SCRAPE_READ_TIMEOUT_MS + 1_000);
    expect(sample(text, 'paystate_token_busy_total')).toBe(1);
    expect(text).not.toContain('paystate_outbox_depth{');
    expect(text).not.toContain('paystate_queue_jobs{');
  });

  it("reads a machine's outbox age on Redis's clock", async () => {
    const metrics = createMetrics();
    observeMachine(
      metrics,
      {
        name: 'payment',
        outboxState: () => Promise.resolve({ depth: 4, oldestAt: 10_000 }),
        timerJobCounts: () => Promise.resolve({ delayed: 3, active: 0, failed: 1, waiting: 0 }),
      },
      { queue: 'payment-timers', now: () => 25_000 },
    );
    const { text } = await metrics.scrape();

    expect(sample(text, 'paystate_outbox_depth{machine="payment"}')).toBe(4);
    expect(sample(text, 'paystate_outbox_oldest_age_seconds{machine="payment"}')).toBe(15);
    expect(sample(text, 'paystate_queue_jobs{queue="payment-timers",state="failed"}')).toBe(1);
  });

  it('keeps each service apart: two registries count separately', async () => {
    const one = createMetrics();
    const two = createMetrics();
    one.tokenBusy();

    expect(sample((await one.scrape()).text, 'paystate_token_busy_total')).toBe(1);
    expect(sample((await two.scrape()).text, 'paystate_token_busy_total')).toBe(0);
  });

  it('bounds each label: past its distinct-value cap, values count as "other"', async () => {
    const metrics = createMetrics();
    for (let i = 0; i < MAX_LABEL_VALUES + 50; i += 1) {
      metrics.transition('payment', 'pending', 'charging', `EVENT_${i}`);
    }
    const text = (await metrics.scrape()).text;
    const series = text.split('\n').filter((l) => l.startsWith('paystate_transitions_total{'));

    expect(series).toHaveLength(MAX_LABEL_VALUES + 1);
    expect(
      sample(
        text,
        'paystate_transitions_total{machine="payment",from="pending",to="charging",event="other"}',
      ),
    ).toBe(50);
  });
});
