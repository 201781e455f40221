// What the audit service's action files and helpers may use of the service (its models and methods).
import type { Service } from "moleculer";
import type { Model } from "mongoose";
import type Redis from "ioredis";
import type { MongoMethods } from "../../shared/mixins/mongo.mixin";
import type { AuditEventDoc } from "./models/audit-event.model";
import type { AdminAuditDoc, ChainHeadDoc } from "./models/admin-audit.model";
import type { ZoneEventDoc } from "./models/zone-event.model";
import type { RetentionDoc } from "./models/retention.model";
import type { BucketMark } from "../../shared/list/buckets";

export interface AuditModels {
  AuditEvent: Model<AuditEventDoc>;
  IngestAlert: Model<Record<string, unknown>>;
  AdminAudit: Model<AdminAuditDoc>;
  ChainHead: Model<ChainHeadDoc>;
  ZoneEvent: Model<ZoneEventDoc>;
  Retention: Model<RetentionDoc>;
  ListMark: Model<BucketMark>;
}

export interface AuditMembers extends MongoMethods {
  models: AuditModels;
  redis: Redis;
  /** Prefix of this service's own Redis keys: the database name keeps test clusters apart. */
  keyPrefix: string;
  /** AUDIT_HMAC_KEY. */
  auditKey: Buffer;
}

export type AuditService = Service & AuditMembers;
