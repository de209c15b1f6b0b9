//! The few protobuf messages an event file holds, with TensorFlow's and TensorBoard's field
//! numbers (`event.proto`, `summary.proto`, `tensor.proto`, and the hparams plugin's
//! `plugin_data.proto`; `google.protobuf.Value` for hyperparameter values).
//! Only the fields Flammable writes are declared: a reader skips none that matter.

use std::collections::BTreeMap;

/// One entry of an event file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The training step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// What it holds.
    #[prost(oneof = "What", tags = "3, 5, 7")]
    pub what: Option<What>,
}

/// What an [`Event`] holds.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    /// The file's format, the first event of a file (`brain.Event:2`).
    #[prost(string, tag = "3")]
    FileVersion(String),
    /// Values.
    #[prost(message, tag = "5")]
    Summary(Summary),
    /// A session's start: a reader drops what it held of the same run's earlier ones.
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

/// `SessionLog`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionLog {
    /// `SessionStatus`: 1 start.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// `SessionLog.SessionStatus.START`.
pub const SESSION_START: i32 = 1;

/// Tagged values.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// One tagged value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    /// The series it belongs to (`loss`, `val/accuracy`).
    #[prost(string, tag = "1")]
    pub tag: String,
    /// Which plugin reads it, and how.
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
    /// The value.
    #[prost(oneof = "ValueKind", tags = "2, 8")]
    pub value: Option<ValueKind>,
}

/// A [`SummaryValue`]'s value.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ValueKind {
    /// A scalar.
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    /// A tensor (text, the hparams plugin's marker).
    #[prost(message, tag = "8")]
    Tensor(TensorProto),
}

/// `SummaryMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryMetadata {
    /// The plugin that reads it, and its data.
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
    /// `DataClass`: 1 scalar, 2 tensor, 3 blob sequence.
    #[prost(int32, tag = "4")]
    pub data_class: i32,
}

/// `SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginData {
    /// `text`, `hparams`.
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    /// The plugin's own message, serialized.
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

/// `DataClass.DATA_CLASS_TENSOR`.
pub const DATA_CLASS_TENSOR: i32 = 2;
/// `DataType.DT_FLOAT`.
pub const DT_FLOAT: i32 = 1;
/// `DataType.DT_STRING`.
pub const DT_STRING: i32 = 7;

/// `TensorProto`, as far as a scalar needs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// `DataType`.
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    /// The shape (no dimensions: a scalar).
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShapeProto>,
    /// `DT_FLOAT` values.
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
    /// `DT_STRING` values.
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub string_val: Vec<Vec<u8>>,
}

/// `TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// The dimensions.
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
}

/// `TensorShapeProto.Dim`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dim {
    /// Its size.
    #[prost(int64, tag = "1")]
    pub size: i64,
}

/// The hparams plugin's `HParamsPluginData`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HParamsPluginData {
    /// The plugin data's version (0).
    #[prost(int32, tag = "1")]
    pub version: i32,
    /// What it says.
    #[prost(oneof = "HParamsData", tags = "3, 4")]
    pub data: Option<HParamsData>,
}

/// What [`HParamsPluginData`] says.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum HParamsData {
    /// A session (a run) began, with these hyperparameters.
    #[prost(message, tag = "3")]
    SessionStartInfo(SessionStartInfo),
    /// A session ended.
    #[prost(message, tag = "4")]
    SessionEndInfo(SessionEndInfo),
}

/// `SessionStartInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionStartInfo {
    /// The hyperparameters' values.
    #[prost(btree_map = "string, message", tag = "1")]
    pub hparams: BTreeMap<String, ProtoValue>,
    /// Sessions of one group (runs that differ only by seed) are shown as one row.
    #[prost(string, tag = "4")]
    pub group_name: String,
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "5")]
    pub start_time_secs: f64,
}

/// `SessionEndInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionEndInfo {
    /// `Status`: 0 unknown, 1 success, 2 failure, 3 running.
    #[prost(int32, tag = "1")]
    pub status: i32,
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "2")]
    pub end_time_secs: f64,
}

/// `google.protobuf.Value`, as far as hyperparameters need.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoValue {
    /// The value.
    #[prost(oneof = "Kind", tags = "2, 3, 4")]
    pub kind: Option<Kind>,
}

/// A [`ProtoValue`]'s kind.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    /// A number (`number_value`).
    #[prost(double, tag = "2")]
    Number(f64),
    /// Text (`string_value`).
    #[prost(string, tag = "3")]
    Text(String),
    /// A boolean (`bool_value`).
    #[prost(bool, tag = "4")]
    Bool(bool),
}
