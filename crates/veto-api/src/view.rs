//! The record lists the revoke and audit endpoints answer. A record's JSON
//! form is veto-core's [`RecordView`], the one the client reads back.

use serde::Serialize;
pub(crate) use veto_core::view::RecordView;
use veto_core::Record;

/// `{"records": [...]}`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RecordList {
    records: Vec<RecordView>,
}

impl RecordList {
    pub(crate) fn new(records: &[Record]) -> RecordList {
        RecordList {
            records: records.iter().map(RecordView::from).collect(),
        }
    }
}
