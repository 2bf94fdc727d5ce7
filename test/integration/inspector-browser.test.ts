/// <reference lib="dom" />
/**
 * The inspector page in a real browser (headless Chromium) against a started
 * service and Redis: a token paid over HTTP is found by the search, its state
 * is the highlighted node, its history is the timeline, and a state's count
 * follows another payment without a reload. Nothing is loaded from another
 * origin and the page logs no error (its CSP allows only its own files).
 * At 800x600, 1400x1000 and 2560x1440 the page is laid out whole: the panel
 * and the legend never cover the diagram, which is on screen or scrolls
 * within its own area.
 *
 * With INSPECTOR_SCREENSHOT set to a path, the page is saved there as a PNG
 * at 1400x1000 (`npm run docs:screenshot` writes docs/inspector.png); with
 * INSPECTOR_LAYOUT_SHOTS set to a directory, the page at each size is saved
 * there.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { launch, type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { bearer, TEST_API_KEYS, TEST_KEYS } from '../support/api-keys.ts';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

// Skipped only outside CI on a machine without Chromium; .ci/run installs it.
const withoutChromium = !existsSync(CHROMIUM) && process.env.CI === undefined;

const launchChromium = () =>
  launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });

describe.skipIf(withoutChromium)('the inspector page in a browser', () => {
  let service: TestService;
  let browser: Browser | undefined;
  let page: Page;
  const problems: string[] = [];
  const foreign: string[] = [];

  const pay = async (token: string, amountCents = 1_200) => {
    const response = await service.request('POST', '/payments', {
      body: { accountId: `acct-${token}`, amountCents },
      headers: { 'Idempotency-Key': token },
    });
    expect(response.status).toBe(201);
  };
  const countOf = (state: string) =>
    page.$eval(`[data-count-for="${state}"]`, (el) => el.textContent);

  beforeAll(async () => {
    service = await startTestService(testConfig(inject('redisUrl')));
    browser = await launchChromium();
    page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 1000 });
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(String(error)));
    page.on('request', (request) => {
      if (!request.url().startsWith(service.url)) foreign.push(request.url());
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await service.stop();
  });

  it('finds a paid token, highlights its state and shows the path it took', async () => {
    await pay('ins-first');
    await service.request('POST', '/payments/ins-cancelled/cancel');
    await pay('ins-refunded', 300);
    await service.request('POST', '/payments/ins-refunded/cancel');

    await page.goto(`${service.url}/inspect`, { waitUntil: 'load' });
    expect(await page.$$eval('.statechart .state-node', (nodes) => nodes.length)).toBe(12);
    await page.waitForFunction(
      () => document.querySelector('[data-count-for="processed"]')?.textContent === '1',
    );

    await page.type('#key', 'ins-first');
    await page.click('#search button');
    await page.waitForSelector('.statechart .state-node.active');

    const active = await page.$$eval('.statechart .state-node.active', (nodes) =>
      nodes.map((n) => (n as SVGElement).dataset.state),
    );
    expect(active).toEqual(['processed']);
    expect(await page.$eval('#found-state', (el) => el.textContent)).toBe('processed');
    const history = await page.$$eval('#history li', (items) =>
      items.map((li) => ({
        event: li.querySelector('.event')?.textContent,
        state: li.querySelector('.state')?.textContent,
        at: li.querySelector('time')?.getAttribute('datetime'),
      })),
    );
    expect(history.map(({ event, state }) => [event, state])).toEqual([
      ['CREATED', 'pending'],
      ['PAY', 'charging'],
      ['CHARGE_SUCCEEDED', 'processed'],
    ]);
    for (const { at } of history) expect(Date.parse(at ?? '')).toBeGreaterThan(0);
    const taken = await page.$$eval('.statechart .edge.taken', (edges) =>
      edges.map((e) => `${(e as SVGElement).dataset.from}->${(e as SVGElement).dataset.to}`),
    );
    expect(taken.sort()).toEqual(['charging->processed', 'pending->charging']);
  });

  it('updates a state count after another payment, without a reload', async () => {
    const before = Number(await countOf('processed'));
    await pay('ins-second');
    await page.waitForFunction(
      (expected) =>
        document.querySelector('[data-count-for="processed"]')?.textContent === expected,
      { timeout: 10_000 },
      String(before + 1),
    );
    expect(await countOf('refunded')).toBe('1');
    expect(await countOf('cancelled')).toBe('1');
    expect(await countOf('charging')).toBe('0');
    expect(
      await page.$eval('.state-node[data-state="processed"]', (n) =>
        n.classList.contains('occupied'),
      ),
    ).toBe(true);
  });

  it('says when a token has no record', async () => {
    await page.$eval('#key', (el) => {
      (el as HTMLInputElement).value = '';
    });
    await page.type('#key', 'ins-nobody');
    await page.click('#search button');
    await page.waitForFunction(
      () => document.querySelector('#message')?.textContent === 'No record for ins-nobody.',
    );
    expect(await page.$$('.statechart .state-node.active')).toHaveLength(0);
    // The 404 of the lookup is the one error the console may show.
    problems.splice(0, problems.length, ...problems.filter((p) => !p.includes('404')));
  });

  // From a small laptop to a large monitor: nothing is cut, the panel and
  // the legend sit beside or below the diagram and never over it, and the
  // whole diagram is on screen or scrolls within its own area.
  it.each([
    [800, 600],
    [1400, 1000],
    [2560, 1440],
    // Narrower than the range above: the panel goes under the diagram.
    [600, 900],
  ])('lays the page out at %ix%i without covering the diagram', async (width, height) => {
    await page.setViewport({ width, height });
    await page.goto(`${service.url}/inspect?key=ins-refunded`, { waitUntil: 'load' });
    await page.waitForFunction(
      () => document.querySelector('#found-state')?.textContent === 'refunded',
    );
    await page.click('.state-node[data-state="processed"]');
    await page.waitForSelector('#listing-keys a');
    const shot = await page.screenshot();
    expect(shot.length).toBeGreaterThan(0);
    const shots = process.env.INSPECTOR_LAYOUT_SHOTS;
    if (shots !== undefined && shots !== '') {
      writeFileSync(`${shots}/inspector-${width}x${height}.png`, shot);
    }

    const layout = await page.evaluate(() => {
      const box = (selector: string) => {
        const r = document.querySelector(selector)?.getBoundingClientRect();
        return r === undefined
          ? null
          : { left: r.left, top: r.top, right: r.right, bottom: r.bottom };
      };
      const canvas = document.querySelector('.canvas') as HTMLElement;
      return {
        page: {
          scrollWidth: document.documentElement.scrollWidth,
          innerWidth: window.innerWidth,
        },
        canvas: box('.canvas'),
        canvasScroll: {
          overflow: getComputedStyle(canvas).overflow,
          scrollWidth: canvas.scrollWidth,
          scrollHeight: canvas.scrollHeight,
        },
        diagram: box('.canvas .statechart'),
        panel: box('#panel'),
        legend: box('#legend'),
        legendItems: [...document.querySelectorAll('#legend li')].map((li) => ({
          text: li.textContent.trim(),
          swatch: li.querySelector('.swatch') !== null,
        })),
        header: [box('#key'), box('#search button'), box('header h1')],
      };
    });
    type Box = { left: number; top: number; right: number; bottom: number };
    const overlaps = (a: Box, b: Box) =>
      a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
    const inside = (a: Box, b: Box) =>
      a.left >= b.left - 0.5 &&
      a.right <= b.right + 0.5 &&
      a.top >= b.top - 0.5 &&
      a.bottom <= b.bottom + 0.5;
    const viewport = { left: 0, top: 0, right: width, bottom: height };
    const { canvas, diagram, panel, legend } = layout;
    if (canvas === null || diagram === null || panel === null) {
      throw new Error(`missing part of the page: ${JSON.stringify(layout)}`);
    }

    // Nothing runs off the side of the page.
    expect(layout.page.scrollWidth).toBeLessThanOrEqual(layout.page.innerWidth);
    for (const part of layout.header) {
      expect(part).not.toBeNull();
      if (part !== null) expect(inside(part, viewport)).toBe(true);
    }
    // The diagram's area is on screen, and nothing sits over it.
    expect(inside(canvas, viewport)).toBe(true);
    expect(overlaps(panel, canvas)).toBe(false);
    // The whole diagram is in its area, or reachable by scrolling that area
    // (which starts at its top left corner).
    expect(diagram.left).toBeGreaterThanOrEqual(canvas.left - 0.5);
    expect(diagram.top).toBeGreaterThanOrEqual(canvas.top - 0.5);
    if (!inside(diagram, canvas)) {
      expect(layout.canvasScroll.overflow).toBe('auto');
      expect(layout.canvasScroll.scrollWidth).toBeGreaterThanOrEqual(
        Math.floor(diagram.right - diagram.left),
      );
      expect(layout.canvasScroll.scrollHeight).toBeGreaterThanOrEqual(
        Math.floor(diagram.bottom - diagram.top),
      );
    }
    // From 1400x1000 up, the diagram fits without scrolling.
    if (width >= 1400) expect(inside(diagram, canvas)).toBe(true);
    // A legend says what each colour of a state means, beside the diagram.
    expect(legend).not.toBeNull();
    if (legend !== null) {
      expect(overlaps(legend, canvas)).toBe(false);
      expect(inside(legend, viewport)).toBe(true);
    }
    expect(layout.legendItems.length).toBeGreaterThanOrEqual(4);
    for (const item of layout.legendItems) {
      expect(item.swatch).toBe(true);
      expect(item.text).not.toBe('');
    }
  });

  it('loads nothing from another origin and logs no error', async () => {
    const screenshot = process.env.INSPECTOR_SCREENSHOT;
    if (screenshot !== undefined && screenshot !== '') {
      await page.setViewport({ width: 1400, height: 1000 });
      await page.goto(`${service.url}/inspect`, { waitUntil: 'load' });
      await page.$eval('#key', (el) => {
        (el as HTMLInputElement).value = '';
      });
      await page.type('#key', 'ins-refunded');
      await page.click('#search button');
      await page.waitForFunction(
        () => document.querySelector('#found-state')?.textContent === 'refunded',
      );
      await page.click('.state-node[data-state="processed"]');
      await page.waitForSelector('#listing-keys a');
      await page.screenshot({ path: screenshot });
    }
    expect(foreign).toEqual([]);
    expect(problems).toEqual([]);
  });
});

describe.skipIf(withoutChromium)('the inspector page in a browser, with API keys', () => {
  const STORED = /t\/(alpha|beta)\//;
  let service: TestService;
  let browser: Browser | undefined;

  beforeAll(async () => {
    service = await startTestService(
      testConfig(inject('redisUrl'), { PAYSTATE_API_KEYS: TEST_API_KEYS }),
    );
    for (const key of [TEST_KEYS.alpha, TEST_KEYS.beta]) {
      const paid = await service.request('POST', '/payments', {
        headers: { ...bearer(key), 'Idempotency-Key': 'brw-shared' },
        body: { accountId: 'acct-brw', amountCents: 500 },
      });
      expect(paid.status).toBe(201);
    }
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await service.stop();
  });

  it("shows each tenant its own token and account id, never the stored form or the other's", async () => {
    if (browser === undefined) throw new Error('no browser');
    for (const key of [TEST_KEYS.alpha, TEST_KEYS.beta]) {
      const page = await browser.newPage();
      await page.setExtraHTTPHeaders(bearer(key));
      await page.goto(`${service.url}/inspect?key=brw-shared`, { waitUntil: 'load' });
      await page.waitForFunction(
        () => document.querySelector('#found-state')?.textContent === 'processed',
      );
      await page.click('.state-node[data-state="processed"]');
      await page.waitForSelector('#listing-keys a');

      expect(await page.$eval('#found-key', (el) => el.textContent)).toBe('brw-shared');
      const fields = await page.$$eval('#found-fields dt', (terms) =>
        Object.fromEntries(terms.map((dt) => [dt.textContent, dt.nextElementSibling?.textContent])),
      );
      expect(fields.accountId).toBe('acct-brw');
      expect(
        await page.$$eval('#listing-keys a', (links) => links.map((a) => a.textContent)),
      ).toEqual(['brw-shared']);
      expect(await page.$eval('body', (body) => body.innerText)).not.toMatch(STORED);
      await page.close();
    }
  });
});
