/**
 * What counts as a secret: key and token paths, and the commands that print the whole
 * environment. Shared by the credentials rules and the analyzer (which folds "an earlier
 * stage of the pipeline reads a secret" as it reads the stages).
 */
import type { Invocation } from "./facts.js";
import { homeRelative } from "./normalize.js";

/** Secrets that give away an identity or a cloud account, home-relative or absolute. */
const KEYS = [
  /^~\/\.ssh$/, /^~\/\.ssh\/(?!.*\.pub$)(id_[^/]*|[^/]*_key|[^/]*\.pem|identity)$/, /\/id_(rsa|dsa|ecdsa|ed25519)(_sk)?$/,
  /^~\/\.aws(\/(credentials|sso\/cache(\/.*)?|cli\/cache(\/.*)?))?$/, /^~\/\.config\/gcloud(\/(credentials\.db|access_tokens\.db|application_default_credentials\.json|legacy_credentials(\/.*)?))?$/,
  /^~\/\.azure(\/(accessTokens\.json|msal_token_cache\.(json|bin)|.*\.pem))?$/, /^~\/\.gnupg(\/(private-keys-v1\.d(\/.*)?|secring\.gpg))?$/,
  /^\/etc\/(shadow|gshadow|master\.passwd|sudoers)(-|\.bak)?$/, /^\/etc\/ssh\/ssh_host_[^/]*_key$/, /^~\/\.password-store(\/.*)?$/,
  /^\/(var\/run|run)\/secrets(\/.*)?$/, /^\/proc\/(self|\d+|\*)\/environ$/, /^~\/\.local\/share\/keyrings(\/.*)?$/, /^~\/Library\/Keychains(\/.*)?$/,
];
/** Tokens a developer machine has: reading one may be legitimate, so a human decides. */
const TOKENS = [
  /^~\/\.netrc$/, /^~\/\.git-credentials$/, /^~\/\.npmrc$/, /^~\/\.pypirc$/, /^~\/\.docker\/config\.json$/, /^~\/\.kube\/config$/,
  /^~\/\.config\/gh\/hosts\.yml$/, /^~\/\.vault-token$/, /^~\/\.terraform\.d\/credentials\.tfrc\.json$/, /^~\/\.cargo\/credentials(\.toml)?$/,
  /^~\/\.config\/hub$/, /^~\/\.gem\/credentials$/, /^~\/\.config\/rclone\/rclone\.conf$/, /^~\/\.boto$/, /^~\/\.s3cfg$/,
];
const ENV_DUMPS = new Set(["env", "printenv", "set", "export", "declare", "compgen"]);

export function isKeyPath(path: string, home: string): boolean {
  const p = homeRelative(path, home);
  return KEYS.some((re) => re.test(p));
}

export function isTokenPath(path: string, home: string): boolean {
  const p = homeRelative(path, home);
  return TOKENS.some((re) => re.test(p));
}

/** Whether an invocation reads a secret: a key or token file, or the whole environment. */
export function readsSecret(inv: Invocation, home: string): boolean {
  return ENV_DUMPS.has(inv.program) && inv.args.length === 0 || (inv.program === "env" && inv.args.every((w) => w.text.startsWith("-"))) || inv.args.some((w) => isKeyPath(w.text, home) || isTokenPath(w.text, home));
}
