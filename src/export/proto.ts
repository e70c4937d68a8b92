// The ONNX file format: onnx.proto as the ONNX project publishes it (release 1.22, checked in
// beside this file unchanged), read by protobufjs. The interfaces below are the part of the
// schema the exporter writes; protobufjs names the fields in camelCase.
import { join } from "node:path";
import protobuf from "protobufjs";
import { packageRoot } from "../io/index.js";
import type { DType } from "../torch/index.js";

/** TensorProto.DataType of each dtype. */
export const DATA_TYPE: Readonly<Record<DType, number>> = { float32: 1, uint8: 2, int32: 6, int64: 7, bool: 9, float64: 11, bfloat16: 16 };

/** AttributeProto.AttributeType. */
export const ATTRIBUTE_TYPE = { FLOAT: 1, INT: 2, STRING: 3, INTS: 7 } as const;

export interface TensorProto {
  name: string;
  dims: number[];
  dataType: number;
  /** Little-endian element bytes. */
  rawData: Uint8Array;
}

export interface AttributeProto {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  ints?: number[];
}

export interface NodeProto {
  name: string;
  opType: string;
  input: string[];
  output: string[];
  attribute: AttributeProto[];
}

/** A dimension: a number, or a named symbol ("batch") that takes any size. */
export type Dim = { dimValue: number } | { dimParam: string };

export interface ValueInfoProto {
  name: string;
  type: { tensorType: { elemType: number; shape: { dim: Dim[] } } };
}

export interface GraphProto {
  name: string;
  node: NodeProto[];
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
}

export interface ModelProto {
  irVersion: number;
  opsetImport: { domain: string; version: number }[];
  producerName: string;
  producerVersion: string;
  docString?: string;
  graph: GraphProto;
  metadataProps: { key: string; value: string }[];
}

let modelType: protobuf.Type | undefined;

function schema(): protobuf.Type {
  modelType ??= protobuf.loadSync(join(packageRoot(), "src", "export", "onnx.proto")).lookupType("onnx.ModelProto");
  return modelType;
}

/** The bytes of an .onnx file. */
export function encodeModel(model: ModelProto): Uint8Array {
  const type = schema();
  return type.encode(type.fromObject(model as unknown as Record<string, unknown>)).finish();
}

/** An .onnx file's metadata_props, as a map (the rest of the model is not converted). */
export function decodeMetadata(bytes: Uint8Array): Map<string, string> {
  const model = schema().decode(bytes) as unknown as { metadataProps?: { key?: string; value?: string }[] };
  return new Map((model.metadataProps ?? []).map((p) => [p.key ?? "", p.value ?? ""]));
}
