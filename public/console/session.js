// @ts-check
/**
 * What the console keeps for this tab, in sessionStorage only (gone with the tab): the admin
 * token, the playground's tenant keys and small page choices such as the selected tenant.
 */

const ADMIN_TOKEN = "mjg.console.adminToken";
const PLAY_KEYS = "mjg.console.playgroundKeys";
const PLAY_KEY = "mjg.console.playgroundKey";

export const session = {
  adminToken: () => sessionStorage.getItem(ADMIN_TOKEN),
  /** @param {string} token */
  setAdminToken: (token) => sessionStorage.setItem(ADMIN_TOKEN, token),
  /** @returns {PlaygroundKey[]} keys created or pasted in this tab, newest first */
  playgroundKeys: () => {
    try {
      return JSON.parse(sessionStorage.getItem(PLAY_KEYS) ?? "[]");
    } catch {
      return [];
    }
  },
  /** @param {PlaygroundKey} key */
  rememberPlaygroundKey: (key) => {
    const keys = session.playgroundKeys().filter((k) => k.secret !== key.secret);
    sessionStorage.setItem(PLAY_KEYS, JSON.stringify([key, ...keys].slice(0, 20)));
    sessionStorage.setItem(PLAY_KEY, key.secret);
  },
  playgroundKey: () => sessionStorage.getItem(PLAY_KEY),
  /** @param {string | null} secret */
  setPlaygroundKey: (secret) =>
    secret ? sessionStorage.setItem(PLAY_KEY, secret) : sessionStorage.removeItem(PLAY_KEY),
  /** @param {string} name */
  get: (name) => sessionStorage.getItem(`mjg.console.${name}`),
  /** @param {string} name @param {string | null} value */
  set: (name, value) =>
    value === null
      ? sessionStorage.removeItem(`mjg.console.${name}`)
      : sessionStorage.setItem(`mjg.console.${name}`, value),
  forgetAdminToken: () => sessionStorage.removeItem(ADMIN_TOKEN),
  clear: () => {
    for (const name of Object.keys(sessionStorage)) {
      if (name.startsWith("mjg.console.")) sessionStorage.removeItem(name);
    }
  },
};

/** @typedef {{ secret: string, label: string, tenantId?: string, keyId?: string }} PlaygroundKey */
