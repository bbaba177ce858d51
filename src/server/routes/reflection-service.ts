import { type DescEnum, type DescFile, type DescMessage, type DescService, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { ServerReflection as ServerReflectionV1 } from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../../../gen/grpc/reflection/v1alpha/reflection_pb.js";

// A reflection stream answers a client building its view of the API: a list, then a file per
// service or symbol. A few hundred requests is far more than any client asks on one stream.
export const MAX_REFLECTION_REQUESTS = 512;
// A request holds one name; symbol and file names are a few dozen characters.
export const MAX_REFLECTION_NAME_CHARS = 1024;
const MAX_REFLECTION_REQUEST_BYTES = 64 * 1024;

/** A reflection request of either version (v1 and v1alpha have the same shape). */
interface ReflectionRequest {
  host: string;
  messageRequest:
    | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: undefined; value?: undefined };
}

type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/**
 * What reflection knows: the served services, every file they are defined in and every file
 * those import, each with its encoded FileDescriptorProto (encoded once), and every symbol
 * defined there.
 */
class Descriptors {
  readonly services: string[];
  readonly #files = new Map<string, DescFile>();
  readonly #symbols = new Map<string, DescFile>();
  readonly #messages = new Map<string, DescMessage>();
  readonly #encoded = new Map<DescFile, Uint8Array>();

  constructor(services: readonly DescService[]) {
    this.services = [...new Set(services.map((service) => service.typeName))].sort();
    for (const service of services) this.#addFile(service.file);
  }

  file(name: string): DescFile | undefined {
    return this.#files.get(name);
  }

  fileOfSymbol(symbol: string): DescFile | undefined {
    return this.#symbols.get(symbol);
  }

  message(typeName: string): DescMessage | undefined {
    return this.#messages.get(typeName);
  }

  /** `file` then each file it imports, directly or not, that `sent` does not hold yet; adds them to `sent`. */
  withDependencies(file: DescFile, sent: Set<DescFile>): Uint8Array[] {
    const out: Uint8Array[] = [this.#encode(file)];
    sent.add(file);
    const pending = [...file.dependencies];
    for (let next = pending.pop(); next; next = pending.pop()) {
      if (sent.has(next)) continue;
      sent.add(next);
      out.push(this.#encode(next));
      pending.push(...next.dependencies);
    }
    return out;
  }

  #encode(file: DescFile): Uint8Array {
    let bytes = this.#encoded.get(file);
    if (!bytes) this.#encoded.set(file, (bytes = toBinary(FileDescriptorProtoSchema, file.proto)));
    return bytes;
  }

  #addFile(file: DescFile): void {
    if (this.#files.has(file.proto.name)) return;
    this.#files.set(file.proto.name, file);
    const add = (name: string) => this.#symbols.set(name, file);
    // Enum values are scoped like their enum, not inside it (protobuf's C++ scoping).
    const addEnum = (desc: DescEnum) => {
      add(desc.typeName);
      const scope = desc.typeName.slice(0, desc.typeName.length - desc.name.length);
      for (const value of desc.values) add(scope + value.name);
    };
    const addMessage = (desc: DescMessage) => {
      add(desc.typeName);
      this.#messages.set(desc.typeName, desc);
      for (const field of desc.fields) add(`${desc.typeName}.${field.name}`);
      for (const oneof of desc.oneofs) add(`${desc.typeName}.${oneof.name}`);
      desc.nestedMessages.forEach(addMessage);
      desc.nestedEnums.forEach(addEnum);
      for (const extension of desc.nestedExtensions) add(extension.typeName);
    };
    file.messages.forEach(addMessage);
    file.enums.forEach(addEnum);
    for (const extension of file.extensions) add(extension.typeName);
    for (const service of file.services) {
      add(service.typeName);
      for (const method of service.methods) add(`${service.typeName}.${method.name}`);
    }
    file.dependencies.forEach((dependency) => this.#addFile(dependency));
  }
}

function failure(code: Code, message: string): ReflectionAnswer {
  return { case: "errorResponse", value: { errorCode: code, errorMessage: message } };
}

// A name from the client as an error message may quote it: bounded, quoted.
function quoted(name: string): string {
  return JSON.stringify(name.slice(0, 128));
}

/** One stream's answers: it remembers which files the client has been sent already. */
function answerer(descriptors: () => Descriptors): (req: ReflectionRequest) => ReflectionAnswer {
  const sent = new Set<DescFile>();
  return (req) => {
    const { messageRequest: ask } = req;
    if (ask.case === undefined) {
      return failure(Code.InvalidArgument, "the request asks nothing: set list_services, file_by_filename or file_containing_symbol");
    }
    const name = ask.case === "fileContainingExtension" ? ask.value.containingType : ask.value;
    if (name.length > MAX_REFLECTION_NAME_CHARS) {
      return failure(Code.InvalidArgument, `names are at most ${MAX_REFLECTION_NAME_CHARS} characters; this one has ${name.length}`);
    }
    const known = descriptors();
    switch (ask.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: known.services.map((service) => ({ name: service })) } };
      case "fileByFilename": {
        const file = known.file(name);
        if (!file) return failure(Code.NotFound, `no file ${quoted(name)}: ask for a file a served service is defined in or imports`);
        return { case: "fileDescriptorResponse", value: { fileDescriptorProto: known.withDependencies(file, sent) } };
      }
      case "fileContainingSymbol": {
        // A leading dot is how descriptors spell fully-qualified names; some clients keep it.
        const file = known.fileOfSymbol(name.startsWith(".") ? name.slice(1) : name);
        if (!file) return failure(Code.NotFound, `no symbol ${quoted(name)}: give a fully-qualified name, e.g. hotplex.v1.SessionService`);
        return { case: "fileDescriptorResponse", value: { fileDescriptorProto: known.withDependencies(file, sent) } };
      }
      case "allExtensionNumbersOfType":
        // None of the served files extends a message, so a known type has no extension numbers.
        if (!known.message(name)) return failure(Code.NotFound, `no message type ${quoted(name)}`);
        return { case: "allExtensionNumbersResponse", value: { baseTypeName: name, extensionNumber: [] } };
      case "fileContainingExtension":
        return failure(Code.NotFound, `no extension ${ask.value.extensionNumber} of ${quoted(name)}: the served files define no extensions`);
    }
  };
}

async function* reflect<R extends ReflectionRequest>(requests: AsyncIterable<R>, descriptors: () => Descriptors) {
  const answer = answerer(descriptors);
  let count = 0;
  for await (const req of requests) {
    count += 1;
    if (count > MAX_REFLECTION_REQUESTS) {
      throw new ConnectError(`a reflection stream takes at most ${MAX_REFLECTION_REQUESTS} requests: open a new stream`, Code.ResourceExhausted);
    }
    yield { validHost: req.host, originalRequest: req, messageResponse: answer(req) };
  }
}

/**
 * gRPC server reflection, v1 and v1alpha (clients try v1 first; older grpcurl speaks only
 * v1alpha), so `buf curl` and grpcurl work with no proto files at hand. `services` is every
 * service the router serves, read at the first request, once all are registered.
 */
export function reflectionServiceRoutes(services: () => readonly DescService[]): (router: ConnectRouter) => void {
  let descriptors: Descriptors | undefined;
  const known = () => (descriptors ??= new Descriptors(services()));
  const options = { readMaxBytes: MAX_REFLECTION_REQUEST_BYTES };
  return (router) => {
    router.service(ServerReflectionV1, { serverReflectionInfo: (requests) => reflect(requests, known) }, options);
    router.service(ServerReflectionV1Alpha, { serverReflectionInfo: (requests) => reflect(requests, known) }, options);
  };
}
