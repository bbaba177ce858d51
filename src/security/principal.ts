/**
 * Who is calling, once their credential has been checked: a named credential, the tenant
 * it acts for and what its roles let it do. Everything below the server takes the tenant
 * from here, never from the request.
 */
export interface Principal {
  /** The credential's name from the server config (never the secret), for logs and the audit log. */
  readonly name: string;
  /** The tenant whose sessions the caller works on; empty for an admin credential. */
  readonly tenant: string;
  readonly roles: readonly Role[];
  readonly permissions: ReadonlySet<Permission>;
}

/**
 * - `client`: runs and reads its tenant's sessions.
 * - `reader`: reads its tenant's sessions (snapshots, logs, stats), changes nothing.
 * - `admin`: the AdminService, over every tenant. Never combined with the other two: an
 *   admin credential is not a client credential.
 */
export type Role = "client" | "reader" | "admin";

export const ROLES: readonly Role[] = ["client", "reader", "admin"];

/** What a method needs; each RPC names exactly one (see server/authorization.ts). */
export type Permission = "session.read" | "session.write" | "admin";

const ROLE_PERMISSIONS: Record<Role, readonly Permission[]> = {
  client: ["session.read", "session.write"],
  reader: ["session.read"],
  admin: ["admin"],
};

/** A principal with the permissions of its roles. */
export function createPrincipal(name: string, tenant: string, roles: readonly Role[]): Principal {
  return Object.freeze({
    name,
    tenant,
    roles: Object.freeze([...roles]),
    permissions: new Set(roles.flatMap((role) => ROLE_PERMISSIONS[role])),
  });
}

/**
 * The caller when the daemon has no credentials at all (loopback only): the tenant
 * "default" with the client role. It can never administer.
 */
export const ANONYMOUS: Principal = createPrincipal("anonymous", "default", ["client"]);

/** The tenant sessions belong to when no credential names one. */
export const DEFAULT_TENANT = "default";

// Tenant names become directory names (each tenant's work root) and registry keys.
const TENANT_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Whether `name` can name a tenant: 1-63 of [a-z0-9_-], starting with a letter or digit. */
export function isTenantName(name: string): boolean {
  return TENANT_NAME.test(name);
}
