/**
 * Debian's chromium for browser tests, driven by playwright-core: headless, a profile of its own
 * in a temporary directory (deleted by `close`), nothing fetched from the network by the browser
 * itself. A missing chromium is an error that says how to install it.
 *
 * @example
 * const browser = await launchChromium();
 * await browser.page.goto(url);
 * await browser.close();
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";

export const chromiumPath = "/usr/bin/chromium";

export interface Chromium {
  readonly context: BrowserContext;
  /** The first page of the context. */
  readonly page: Page;
  close(): Promise<void>;
}

export async function launchChromium(viewport = { width: 1440, height: 1100 }): Promise<Chromium> {
  if (!existsSync(chromiumPath)) {
    throw new Error(
      `chromium is not installed (${chromiumPath} is missing): the browser tests need Debian's chromium. ` +
        "Install it with `apt-get install -y chromium` (as root), or run scripts/setup.sh.",
    );
  }
  const userDataDir = mkdtempSync(join(tmpdir(), "eddy-chromium-"));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport,
    });
  } catch (error) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw error;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    close: async () => {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
