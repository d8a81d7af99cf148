//! What a source hands the engine: a plan (which kinds, bulk or delta) and a feed of records.

use crate::domain::records::{Mode, RecordKind, SourceRecord};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PlannedKind {
    pub kind: RecordKind,
    pub mode: Mode,
    /// Where this kind's records come from (a file name), for messages.
    pub label: String,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub kinds: Vec<PlannedKind>,
}

impl Plan {
    pub fn mode(&self, kind: RecordKind) -> Option<Mode> {
        self.kinds.iter().find(|p| p.kind == kind).map(|p| p.mode)
    }
    pub fn label(&self, kind: RecordKind) -> String {
        self.kinds
            .iter()
            .find(|p| p.kind == kind)
            .map(|p| p.label.clone())
            .unwrap_or_else(|| kind.oneroster_name().to_string())
    }
}

/// Records arrive kind by kind, in dependency order.
#[derive(Debug)]
pub enum Feed {
    Records(RecordKind, Vec<SourceRecord>),
    /// No more records of this kind.
    Done(RecordKind),
}
