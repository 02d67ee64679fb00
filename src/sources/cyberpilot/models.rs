//! The users-summary report as CyberPilot sends it, read leniently: unknown fields ignored,
//! optional ones may be missing or null, numbers may be text. `lastAction` (documented as an
//! int, described as text) is not used and so accepted in any form.

use serde::Deserialize;

use crate::sources::lenient;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserSummary {
    #[serde(default, deserialize_with = "lenient::number")]
    pub enrolled_courses: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub not_completed_courses: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub overdue_courses: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub average_score: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub enrolled_materials: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub not_completed_materials: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub phishing_campaigns: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub emails_sent: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub links_clicked: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub data_submitted: Option<f64>,
    pub user: UserInfo,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct UserInfo {
    #[serde(default, deserialize_with = "lenient::label")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub email: Option<String>,
    #[serde(default)]
    pub branch: Option<Branch>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Branch {
    #[serde(default, deserialize_with = "lenient::label")]
    pub name: Option<String>,
}

impl UserSummary {
    /// The identity used to drop duplicates across pages (the id, else the email).
    pub fn identity(&self) -> Option<&str> {
        self.user.id.as_deref().or(self.user.email.as_deref())
    }

    /// The user's averageScore when it means something. CyberPilot documents it as an int (never
    /// null), so a user with no training yet sends 0: a 0 counts only when the user has
    /// completed at least one course (the scored part of the training).
    pub fn score(&self) -> Option<f64> {
        let s = self.average_score?;
        let completed =
            self.enrolled_courses.unwrap_or(0.0) - self.not_completed_courses.unwrap_or(0.0);
        (s > 0.0 || completed > 0.0).then_some(s)
    }

    /// The user's branch, if it has a name.
    pub fn branch(&self) -> Option<&str> {
        self.user.branch.as_ref()?.name.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::cyberpilot::page::UsersFormat;
    use crate::sources::paging::Format;
    use serde_json::value::RawValue;

    /// One row as the paging engine reads it; `None` when it is skipped.
    fn row(json: &str) -> Option<UserSummary> {
        let raw: Box<RawValue> = serde_json::from_str(json).unwrap();
        let mut rows = Vec::new();
        UsersFormat::rows(&raw, &mut rows);
        rows.pop()
    }

    #[test]
    fn last_action_as_number_or_text_and_extra_fields() {
        let a = row(r#"{"lastAction":3,"overdueCourses":2,"user":{"id":"u1","email":"a@x"},"newField":{"x":1}}"#).unwrap();
        let b = row(r#"{"lastAction":"Email sent","overdueCourses":"2","user":{"id":7,"email":"b@x","branch":null,"groups":[]}}"#).unwrap();
        assert_eq!(a.overdue_courses, Some(2.0));
        assert_eq!(b.overdue_courses, Some(2.0));
        assert_eq!(b.user.id.as_deref(), Some("7"));
        assert_eq!(b.branch(), None);
    }

    #[test]
    fn users_without_training_have_no_score() {
        let fresh = row(r#"{"enrolledCourses":0,"notCompletedCourses":0,"enrolledMaterials":0,"notCompletedMaterials":0,"averageScore":0,"user":{"id":"u"}}"#).unwrap();
        assert_eq!(fresh.score(), None);
        let waiting = row(
            r#"{"enrolledCourses":3,"notCompletedCourses":3,"averageScore":0,"user":{"id":"u"}}"#,
        )
        .unwrap();
        assert_eq!(waiting.score(), None);
        let failed = row(
            r#"{"enrolledCourses":3,"notCompletedCourses":2,"averageScore":0,"user":{"id":"u"}}"#,
        )
        .unwrap();
        assert_eq!(failed.score(), Some(0.0), "a real 0 after training counts");
        let materials_only = row(r#"{"enrolledMaterials":2,"notCompletedMaterials":1,"averageScore":0,"user":{"id":"u"}}"#).unwrap();
        assert_eq!(materials_only.score(), None);
        let good = row(r#"{"enrolledMaterials":2,"notCompletedMaterials":1,"averageScore":"87","user":{"id":"u"}}"#).unwrap();
        assert_eq!(good.score(), Some(87.0));
        let null = row(r#"{"enrolledCourses":3,"notCompletedCourses":0,"averageScore":null,"user":{"id":"u"}}"#).unwrap();
        assert_eq!(null.score(), None);
    }

    #[test]
    fn bad_rows_are_rejected_alone() {
        assert!(row(r#"{"overdueCourses":true,"user":{"id":"u"}}"#).is_none());
        assert!(row(r#"{"overdueCourses":1}"#).is_none());
        assert!(row(r#"{"user":{}}"#).is_none());
        assert!(row("[1,2]").is_none());
    }
}
