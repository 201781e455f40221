// The audit retention setting (reference-ops §10): one document, global.
import { Schema } from "mongoose";

export const RETENTION_ID = "audit";

export interface RetentionDoc {
  _id: string;
  retention_days: number;
  updated_at: Date;
}

export const retentionSchema = new Schema(
  { _id: { type: String, required: true }, retention_days: Number, updated_at: Date },
  { versionKey: false, _id: false },
);
