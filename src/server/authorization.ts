import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { ServerReflection as ServerReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { Health } from "../../gen/health/v1/health_pb.js";
import { AdminService } from "../../gen/hotplex/v1/admin_service_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import type { Permission, Principal } from "../security/principal.js";
import { authKey, type BodyProblem, bodyProblemKey, forwardRefusalKey, principalKey } from "./context.js";

// Every method of every service, and the one permission it needs. The Record types make
// a method added to a proto fail the type check until it is listed here.
const SESSION_SERVICE: Record<keyof typeof SessionService.method, Permission> = {
  execute: "session.write",
  subscribe: "session.read",
  getSnapshot: "session.read",
  stopSession: "session.write",
  interrupt: "session.write",
  getSessionStats: "session.read",
  listSessions: "session.read",
  deleteSession: "session.write",
  listProviders: "session.read",
  respondPermission: "session.write",
  steer: "session.write",
  cancelTurn: "session.write",
  changeSettings: "session.write",
  listModels: "session.read",
  resetSession: "session.write",
  forkSession: "session.write",
  setTitle: "session.write",
};

const ADMIN_SERVICE: Record<keyof typeof AdminService.method, Permission> = {
  listAllSessions: "admin",
  stopTenantSession: "admin",
  deleteTenantSession: "admin",
  getServerInfo: "admin",
  drain: "admin",
  listAuditEvents: "admin",
  setRuleBypass: "admin",
  getSessionLogs: "admin",
};

/** "hotplex.v1.SessionService/Execute" → the permission it needs. */
export const METHOD_PERMISSIONS: ReadonlyMap<string, Permission> = new Map([
  ...Object.entries(SESSION_SERVICE).map(([name, permission]) => [methodKey(SessionService.method[name as keyof typeof SESSION_SERVICE]), permission] as const),
  ...Object.entries(ADMIN_SERVICE).map(([name, permission]) => [methodKey(AdminService.method[name as keyof typeof ADMIN_SERVICE]), permission] as const),
]);

/**
 * Methods outside the permission table:
 * - `anyone`: served without a credential, and with a missing or wrong one. Health only:
 *   a Kubernetes gRPC probe sends none, and it tells nothing about any tenant.
 * - `any credential`: a valid credential of any role. Reflection: it describes the API
 *   (public in its protos anyway), not any tenant's data, and every client that uses what
 *   it describes holds a credential already.
 */
export type OpenAccess = "anyone" | "any credential";

const HEALTH: Record<keyof typeof Health.method, OpenAccess> = { check: "anyone", watch: "anyone", list: "anyone" };
const REFLECTION: Record<keyof typeof ServerReflectionV1.method, OpenAccess> = { serverReflectionInfo: "any credential" };

/** "grpc.health.v1.Health/Check" → who may call it. */
export const OPEN_METHODS: ReadonlyMap<string, OpenAccess> = new Map([
  ...Object.entries(HEALTH).map(([name, access]) => [methodKey(Health.method[name as keyof typeof HEALTH]), access] as const),
  ...[ServerReflectionV1, ServerReflectionV1Alpha].flatMap((service) =>
    Object.entries(REFLECTION).map(([name, access]) => [methodKey(service.method[name as keyof typeof REFLECTION]), access] as const),
  ),
]);

/**
 * The largest request of a method anyone may call (a health request holds a service name):
 * an unauthenticated caller gets no more of the daemon's memory and time than that.
 */
export const OPEN_METHOD_MAX_BYTES = 4096;

/** Whether a method is served without a credential (the adapter then reads its body). */
export function isPublicMethod(method: DescMethod): boolean {
  return OPEN_METHODS.get(methodKey(method)) === "anyone";
}

/** The name a method has in the permission table and the audit log. */
export function methodKey(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

/** A refusal worth an audit entry: a valid credential called a method its roles do not allow. */
export interface PermissionDenial {
  principal: Principal;
  method: string;
  permission: Permission | undefined;
}

/**
 * Lets a call through only with a valid credential whose roles grant the method's
 * permission (a method missing from the table is refused), and sets the principal for
 * the handler; OPEN_METHODS are let through as they say. Also refuses a call whose body
 * the adapter found malformed.
 */
export function createAuthorizationInterceptor(onDenied?: (denial: PermissionDenial) => void): Interceptor {
  return (next) => async (req) => {
    const auth = req.contextValues.get(authKey);
    const method = methodKey(req.method);
    const open = OPEN_METHODS.get(method);
    if (!auth.principal && open === "anyone") {
      refuseBodyProblem(req.contextValues.get(bodyProblemKey));
      return next(req);
    }
    const forwardRefused = req.contextValues.get(forwardRefusalKey);
    if (forwardRefused) throw new ConnectError(`the call claims to be forwarded by another node, and is refused: ${forwardRefused}`, Code.Unauthenticated);
    if (!auth.principal) {
      throw new ConnectError(
        auth.failure === "missing"
          ? "this daemon requires a credential: send Authorization: Bearer <token>"
          : "the credential is not valid (send Authorization: Bearer <token> with a token from the server config)",
        Code.Unauthenticated,
      );
    }
    const principal = auth.principal;
    const permission = METHOD_PERMISSIONS.get(method);
    if (!open && (!permission || !principal.permissions.has(permission))) {
      onDenied?.({ principal, method, permission });
      throw new ConnectError(
        `credential "${principal.name}" (roles: ${principal.roles.join(", ")}) may not call ${req.method.name}` +
          (permission ? `: it needs the ${permission} permission` : ""),
        Code.PermissionDenied,
      );
    }
    refuseBodyProblem(req.contextValues.get(bodyProblemKey));
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}

function refuseBodyProblem(problem: BodyProblem | undefined): void {
  if (problem) {
    throw new ConnectError(problem.message, problem.code === "invalid_argument" ? Code.InvalidArgument : Code.ResourceExhausted);
  }
}
